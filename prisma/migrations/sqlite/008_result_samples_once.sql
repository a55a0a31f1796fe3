-- moefarm schema v8 for SQLite: a result's samples are stored once. "mean", "min", "max" and "stdev" were the
-- binary's statistics of "samplesUs" that nothing read (compare, history and export compute from the
-- samples); they are dropped. "n", "median", "p10" and "p90" stay, derived from "samplesUs" at insert, for
-- results list. "relErr" becomes nullable: null is "no error measured", which was stored as -1. SQLite cannot
-- drop NOT NULL from a column, so the table is made again: created under another name, filled from the old
-- one (-1 becoming NULL), the old one dropped, the new one renamed, its indexes made again. No table refers
-- to "Result". Mirrors prisma/models.prisma.
CREATE TABLE "Result_008" (
  "id" TEXT NOT NULL PRIMARY KEY,
  "runId" TEXT NOT NULL,
  "build" TEXT NOT NULL DEFAULT 'default',
  "buildKey" TEXT,
  "variant" TEXT NOT NULL,
  "pointHash" TEXT NOT NULL,
  "n" INTEGER NOT NULL,
  "median" REAL NOT NULL,
  "p10" REAL NOT NULL,
  "p90" REAL NOT NULL,
  "bandwidthGbps" REAL,
  "bytesPerIter" REAL NOT NULL,
  "checkPass" BOOLEAN NOT NULL,
  "relErr" REAL,
  "samplesUs" TEXT NOT NULL,
  "rounds" TEXT NOT NULL,
  "smClockMhz" TEXT,
  "waits" TEXT,
  "sourceHash" TEXT NOT NULL,
  "gitCommit" TEXT,
  "tune" TEXT NOT NULL DEFAULT '',
  "tunables" TEXT,
  "device" TEXT,
  "joulesPerForward" REAL,
  "meanPowerW" REAL,
  "energyStepMj" REAL,
  "energyUpdateMs" REAL,
  "energy" TEXT,
  CONSTRAINT "Result_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
INSERT INTO "Result_008" (
  "id", "runId", "build", "buildKey", "variant", "pointHash", "n", "median", "p10", "p90", "bandwidthGbps", "bytesPerIter",
  "checkPass", "relErr", "samplesUs", "rounds", "smClockMhz", "waits", "sourceHash", "gitCommit", "tune", "tunables", "device",
  "joulesPerForward", "meanPowerW", "energyStepMj", "energyUpdateMs", "energy"
)
SELECT
  "id", "runId", "build", "buildKey", "variant", "pointHash", "n", "median", "p10", "p90", "bandwidthGbps", "bytesPerIter",
  "checkPass", CASE WHEN "relErr" = -1 THEN NULL ELSE "relErr" END, "samplesUs", "rounds", "smClockMhz", "waits", "sourceHash", "gitCommit", "tune", "tunables", "device",
  "joulesPerForward", "meanPowerW", "energyStepMj", "energyUpdateMs", "energy"
FROM "Result";
DROP TABLE "Result";
ALTER TABLE "Result_008" RENAME TO "Result";
CREATE UNIQUE INDEX "Result_runId_build_variant_tune_key" ON "Result"("runId", "build", "variant", "tune");
CREATE INDEX "Result_pointHash_idx" ON "Result"("pointHash");
CREATE INDEX "Result_sourceHash_idx" ON "Result"("sourceHash");
