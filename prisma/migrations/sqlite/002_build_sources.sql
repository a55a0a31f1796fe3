-- moefarm schema v2 for SQLite: build sources (the kernel under test travels with the sweep), and the
-- build of each result (a run may interleave several builds). Mirrors prisma/models.prisma.
CREATE TABLE "BuildSource" (
  "hash" TEXT NOT NULL PRIMARY KEY,
  "gitCommit" TEXT,
  "commitTime" TEXT,
  "parents" TEXT NOT NULL DEFAULT '[]',
  "generation" INTEGER,
  "dirty" BOOLEAN NOT NULL DEFAULT false,
  "label" TEXT NOT NULL,
  "files" INTEGER,
  "bytes" INTEGER,
  "firstSeen" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
ALTER TABLE "Result" ADD COLUMN "build" TEXT NOT NULL DEFAULT 'default';
ALTER TABLE "Result" ADD COLUMN "buildKey" TEXT;
DROP INDEX "Result_runId_variant_key";
CREATE UNIQUE INDEX "Result_runId_build_variant_key" ON "Result"("runId", "build", "variant");
CREATE INDEX "Result_sourceHash_idx" ON "Result"("sourceHash");
