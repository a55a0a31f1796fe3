-- moefarm schema v7 for Postgres: Run."pointHash" held the job's group hash (one point, or every variant of
-- an interleaved point), while Result."pointHash" and Annotation."pointHash" hold the point with its
-- variant; the Run column is renamed to say what it holds, and its index with it. Mirrors
-- prisma/models.prisma.
ALTER TABLE "Run" RENAME COLUMN "pointHash" TO "groupHash";
ALTER INDEX "Run_pointHash_idx" RENAME TO "Run_groupHash_idx";
