-- moefarm schema v5 for SQLite: the bytes of each source bundle, by source hash, so a sweep can be resumed or
-- retried after Redis lost its bundles (sweep resume, sweep retry). Mirrors prisma/models.prisma.
CREATE TABLE "SourceBundle" (
  "hash" TEXT NOT NULL PRIMARY KEY,
  "blob" BLOB NOT NULL,
  "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
