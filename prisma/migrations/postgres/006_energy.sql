-- moefarm schema v6 for Postgres: what the binary measured besides time, per result. Energy per forward from
-- the GPU's energy counter (null on the CPU backend and wherever the binary could not read it; "energy"
-- keeps the binary's whole figure with its reason), the counter's resolution as the binary measured it,
-- the device name the binary reported (the tuning table's key), and the tunable values: "tune" the
-- setting the sweep asked for (matrix.tune, '' for none: part of the result's identity, since one
-- interleaved run may hold one variant at several settings), "tunables" every value the binary used
-- with its source (JSON). Mirrors prisma/models.prisma.
ALTER TABLE "Result" ADD COLUMN "tune" TEXT NOT NULL DEFAULT '';
ALTER TABLE "Result" ADD COLUMN "tunables" TEXT;
ALTER TABLE "Result" ADD COLUMN "device" TEXT;
ALTER TABLE "Result" ADD COLUMN "joulesPerForward" DOUBLE PRECISION;
ALTER TABLE "Result" ADD COLUMN "meanPowerW" DOUBLE PRECISION;
ALTER TABLE "Result" ADD COLUMN "energyStepMj" DOUBLE PRECISION;
ALTER TABLE "Result" ADD COLUMN "energyUpdateMs" DOUBLE PRECISION;
ALTER TABLE "Result" ADD COLUMN "energy" TEXT;
DROP INDEX "Result_runId_build_variant_key";
CREATE UNIQUE INDEX "Result_runId_build_variant_tune_key" ON "Result"("runId", "build", "variant", "tune");
