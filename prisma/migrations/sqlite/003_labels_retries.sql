-- moefarm schema v3 for SQLite: a sweep's label (sweep submit --label) and a run's earlier outcomes
-- (sweep retry puts a run back in the queue and keeps what it ended with before). Mirrors prisma/models.prisma.
ALTER TABLE "Sweep" ADD COLUMN "label" TEXT;
CREATE INDEX "Sweep_label_idx" ON "Sweep"("label");
CREATE INDEX "Sweep_createdAt_idx" ON "Sweep"("createdAt");
ALTER TABLE "Run" ADD COLUMN "retries" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Run" ADD COLUMN "previous" TEXT;
