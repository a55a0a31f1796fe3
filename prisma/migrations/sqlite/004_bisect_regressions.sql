-- moefarm schema v4 for SQLite: regressions where developers work. Annotations of history steps
-- (results annotate: a build's step at one point marked expected or invalid), and the state of
-- bisections (moefarm bisect: the commits between good and bad, each step's paired sweep and what it
-- said), so an interrupted bisect resumes. Mirrors prisma/models.prisma.
CREATE TABLE "Annotation" (
  "sourceHash" TEXT NOT NULL,
  "pointHash" TEXT NOT NULL,
  "kind" TEXT NOT NULL,
  "note" TEXT NOT NULL,
  "gitCommit" TEXT,
  "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY ("sourceHash", "pointHash")
);
CREATE INDEX "Annotation_pointHash_idx" ON "Annotation"("pointHash");
CREATE TABLE "Bisect" (
  "id" TEXT NOT NULL PRIMARY KEY,
  "repo" TEXT NOT NULL,
  "sweepFile" TEXT NOT NULL,
  "spec" TEXT NOT NULL,
  "goodRef" TEXT NOT NULL,
  "badRef" TEXT NOT NULL,
  "goodCommit" TEXT NOT NULL,
  "badCommit" TEXT NOT NULL,
  "point" TEXT,
  "settings" TEXT NOT NULL,
  "commits" TEXT NOT NULL,
  "status" TEXT NOT NULL,
  "firstBad" TEXT,
  "result" TEXT,
  "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "BisectStep" (
  "id" TEXT NOT NULL PRIMARY KEY,
  "bisectId" TEXT NOT NULL,
  "commit" TEXT NOT NULL,
  "position" INTEGER NOT NULL,
  "seq" INTEGER NOT NULL,
  "sweepId" TEXT,
  "sourceHash" TEXT,
  "status" TEXT NOT NULL,
  "verdict" TEXT,
  "speedup" REAL,
  "ciLo" REAL,
  "ciHi" REAL,
  "reason" TEXT,
  "startedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "finishedAt" DATETIME,
  CONSTRAINT "BisectStep_bisectId_fkey" FOREIGN KEY ("bisectId") REFERENCES "Bisect" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "BisectStep_bisectId_commit_key" ON "BisectStep"("bisectId", "commit");
