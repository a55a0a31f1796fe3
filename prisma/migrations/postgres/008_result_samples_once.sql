-- moefarm schema v8 for Postgres: a result's samples are stored once. "mean", "min", "max" and "stdev" were
-- the binary's statistics of "samplesUs" that nothing read (compare, history and export compute from the
-- samples); they are dropped. "n", "median", "p10" and "p90" stay, derived from "samplesUs" at insert, for
-- results list. "relErr" becomes nullable: null is "no error measured", which was stored as -1. Mirrors
-- prisma/models.prisma.
ALTER TABLE "Result" DROP COLUMN "mean", DROP COLUMN "min", DROP COLUMN "max", DROP COLUMN "stdev";
ALTER TABLE "Result" ALTER COLUMN "relErr" DROP NOT NULL;
UPDATE "Result" SET "relErr" = NULL WHERE "relErr" = -1;
