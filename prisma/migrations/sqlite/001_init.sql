-- moefarm schema v1 for SQLite. Mirrors prisma/models.prisma (Prisma's own naming and types).
CREATE TABLE "Sweep" (
  "id" TEXT NOT NULL PRIMARY KEY,
  "name" TEXT NOT NULL,
  "pool" TEXT NOT NULL,
  "spec" TEXT NOT NULL,
  "source" TEXT,
  "points" INTEGER NOT NULL,
  "runs" INTEGER NOT NULL,
  "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "Run" (
  "id" TEXT NOT NULL PRIMARY KEY,
  "sweepId" TEXT NOT NULL,
  "pointHash" TEXT NOT NULL,
  "rep" INTEGER NOT NULL,
  "pool" TEXT NOT NULL,
  "params" TEXT NOT NULL,
  "status" TEXT NOT NULL,
  "reason" TEXT,
  "attempts" INTEGER NOT NULL DEFAULT 0,
  "workerId" TEXT,
  "buildKey" TEXT,
  "flags" TEXT NOT NULL DEFAULT '',
  "env" TEXT,
  "telemetry" TEXT,
  "stdoutTail" TEXT,
  "stderrTail" TEXT,
  "wallMs" REAL,
  "startedAt" DATETIME,
  "finishedAt" DATETIME,
  "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "Run_sweepId_fkey" FOREIGN KEY ("sweepId") REFERENCES "Sweep" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE INDEX "Run_sweepId_status_idx" ON "Run"("sweepId", "status");
CREATE INDEX "Run_pointHash_idx" ON "Run"("pointHash");
CREATE TABLE "Result" (
  "id" TEXT NOT NULL PRIMARY KEY,
  "runId" TEXT NOT NULL,
  "variant" TEXT NOT NULL,
  "pointHash" TEXT NOT NULL,
  "n" INTEGER NOT NULL,
  "median" REAL NOT NULL,
  "p10" REAL NOT NULL,
  "p90" REAL NOT NULL,
  "mean" REAL NOT NULL,
  "min" REAL NOT NULL,
  "max" REAL NOT NULL,
  "stdev" REAL NOT NULL,
  "bandwidthGbps" REAL,
  "bytesPerIter" REAL NOT NULL,
  "checkPass" BOOLEAN NOT NULL,
  "relErr" REAL NOT NULL,
  "samplesUs" TEXT NOT NULL,
  "rounds" TEXT NOT NULL,
  "smClockMhz" TEXT,
  "waits" TEXT,
  "sourceHash" TEXT NOT NULL,
  "gitCommit" TEXT,
  CONSTRAINT "Result_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "Result_runId_variant_key" ON "Result"("runId", "variant");
CREATE INDEX "Result_pointHash_idx" ON "Result"("pointHash");
CREATE TABLE "Worker" (
  "id" TEXT NOT NULL PRIMARY KEY,
  "host" TEXT NOT NULL,
  "pool" TEXT NOT NULL,
  "backend" TEXT NOT NULL,
  "cpu" TEXT NOT NULL,
  "gpu" TEXT,
  "driver" TEXT,
  "compiler" TEXT NOT NULL,
  "info" TEXT NOT NULL,
  "firstSeen" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "lastSeen" DATETIME NOT NULL
);
CREATE TABLE "Build" (
  "key" TEXT NOT NULL PRIMARY KEY,
  "backend" TEXT NOT NULL,
  "sourceHash" TEXT NOT NULL,
  "gitCommit" TEXT,
  "compiler" TEXT NOT NULL,
  "flags" TEXT NOT NULL,
  "arch" TEXT NOT NULL,
  "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
