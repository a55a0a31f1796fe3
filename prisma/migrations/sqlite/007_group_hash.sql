-- moefarm schema v7 for SQLite: Run."pointHash" held the job's group hash (one point, or every variant of an
-- interleaved point), while Result."pointHash" and Annotation."pointHash" hold the point with its variant;
-- the Run column is renamed to say what it holds. SQLite keeps an index's name on a column rename, so the
-- index is made again under its new name. Mirrors prisma/models.prisma.
ALTER TABLE "Run" RENAME COLUMN "pointHash" TO "groupHash";
DROP INDEX "Run_pointHash_idx";
CREATE INDEX "Run_groupHash_idx" ON "Run"("groupHash");
