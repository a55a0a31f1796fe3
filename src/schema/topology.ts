/**
 * How the GPUs a run used are linked (worker/gpu/topology.ts reads it from
 * `nvidia-smi topo -m`): stored in Run.env (schema/job.ts RunEnvSchema) and
 * shown by `moefarm workers` from the worker's heartbeat. The one definition
 * of its shape.
 */
import { z } from 'zod';

/** The topology of a set of GPUs: the link of every pair (i < j) by nvidia-smi index. */
export const TopologySchema = z.object({
  gpus: z.array(z.int().nonnegative()),
  /** "0-1" → "NV18": every pair of `gpus`, lower index first. */
  links: z.record(z.string(), z.string()),
  /** The links as a multiset, order-free: what an environment group keys on. */
  summary: z.string(),
});
export type Topology = z.output<typeof TopologySchema>;
