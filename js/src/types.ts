/**
 * Payloads of the server extension (`runpod_jupyter/server/views.py` builds them).
 */

export type BackendName = 'local' | 'cloud';

export type WorkerState =
  'initializing' | 'idle' | 'running' | 'throttled' | 'outdated' | 'unhealthy';

export const WORKER_STATES: WorkerState[] = [
  'initializing',
  'idle',
  'running',
  'throttled',
  'outdated',
  'unhealthy'
];

export interface IAccount {
  balance: number;
  spendPerHour: number;
}

export interface IGpuPool {
  id: string;
  memoryGb: number | null;
  examples: string;
  pricePerHour: number | null;
}

export interface IFinding {
  level: 'error' | 'warning' | 'info';
  code: string;
  message: string;
  fix: string;
}

export interface IJobCounts {
  completed: number;
  failed: number;
  inProgress: number;
  inQueue: number;
  retried: number;
}

export interface IHealth {
  registered: boolean;
  jobs: IJobCounts;
  workers: Record<WorkerState, number>;
}

export interface IWorker {
  id: string;
  state: string;
  gpu: string | null;
  jobs: string[];
  release: number;
  exitCode: number | null;
  reason: string | null;
  crashes: number;
  /** Runs an earlier release than the endpoint's (REST v2 `isStale`). */
  stale?: boolean;
}

export type StockLevel = 'HIGH' | 'MEDIUM' | 'LOW' | 'NONE' | 'unknown';

/** The newest release and how far it has reached (REST v2 `/releases`). */
export interface IRollout {
  version: number;
  summary: string;
  inProgress: boolean;
  workersOnLatest: number;
  workersTotal: number;
  percentOnLatest: number;
  changed: string[];
}

export interface IEndpoint {
  id: string;
  name: string;
  backend: BackendName;
  templateName: string | null;
  image: string | null;
  gpuIds: string[];
  gpuPools: IGpuPool[];
  workersMin: number;
  workersMax: number;
  idleTimeout: number;
  scalerType: string;
  scalerValue: number;
  health: IHealth | null;
  workers: IWorker[] | null;
  findings: IFinding[];
  error: string | null;
  rollout: IRollout | null;
  stale: number | null;
  /** GPU stock of the endpoint's own pools. */
  stock: Record<string, StockLevel> | null;
}

export interface IBackend {
  name: BackendName;
  state: 'ok' | 'off' | 'error';
  message: string | null;
  hint: string | null;
  canStart: boolean;
  account: IAccount | null;
  endpoints: IEndpoint[];
}

export interface IJournalJob {
  id: string;
  endpointId: string;
  endpointName: string;
  backend: BackendName;
  kind: string;
  batchId: string | null;
  submittedAt: number;
  inputPreview: string;
  status: string;
  reason: string | null;
  finishedAt: number | null;
  delayMs: number | null;
  executionMs: number | null;
  workerId: string | null;
}

export interface IOverview {
  version: string;
  generatedAt: number;
  backends: IBackend[];
  jobs: IJournalJob[];
}

export interface IJob {
  id: string;
  status: string;
  output: unknown;
  outputTruncated: boolean;
  error: unknown;
  reason: string | null;
  delayMs: number | null;
  executionMs: number | null;
  workerId: string | null;
}

/** `[time, kind, detail]` */
export type TimelineEvent = [number, string, string | null];

export interface ITimeline {
  createdAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  events: TimelineEvent[];
  progressLog: [number, unknown][];
  streamCount: number | null;
  retries: number | null;
  reason: string | null;
}

export interface IJobDetail {
  id: string;
  backend: BackendName;
  endpointId: string;
  journal: IJournalJob | null;
  job: IJob | null;
  jobError: string | null;
  timeline: ITimeline | null;
}

export const FINAL_STATUSES = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'GONE']);
