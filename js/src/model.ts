import { VDomModel } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';

import { ApiError, requestAPI, sendAPI } from './request';
import { BackendName, FINAL_STATUSES, IEndpoint, IJobDetail, IOverview } from './types';

/** What the last action did, shown under the header until the next one. */
export interface INotice {
  level: 'info' | 'error';
  text: string;
}

const INTERVAL = 3000;
const MAX_BACKOFF = 60_000;

/**
 * The panel's state: the latest overview, the selected job's detail and what is in flight.
 * One Lumino `Poll` refreshes it while the panel is visible and the page is shown; failures
 * back off up to a minute.
 */
export class SidebarModel extends VDomModel {
  readonly poll: Poll;
  visible = false;
  overview: IOverview | null = null;
  error: ApiError | null = null;
  notice: INotice | null = null;
  selectedJob: string | null = null;
  jobDetail: IJobDetail | null = null;
  jobDetailError: string | null = null;
  focusedEndpoint: string | null = null;
  private scrollTarget: string | null = null;
  readonly busy = new Set<string>();

  constructor() {
    super();
    this.poll = new Poll({
      auto: false,
      factory: () => this.tick(),
      frequency: { interval: INTERVAL, backoff: true, max: MAX_BACKOFF },
      name: 'runpod-jupyter:overview',
      standby: () => (this.visible ? 'when-hidden' : true)
    });
  }

  setVisible(visible: boolean): void {
    this.visible = visible;
    if (visible) {
      if (this.poll.state.phase === 'constructed') {
        void this.poll.start();
      } else {
        void this.poll.refresh();
      }
    }
  }

  /** Refresh now (also resets a backoff). */
  refresh(): Promise<void> {
    return this.poll.refresh();
  }

  get endpoints(): IEndpoint[] {
    return (this.overview?.backends ?? []).flatMap(b => b.endpoints);
  }

  private async tick(): Promise<void> {
    try {
      this.overview = await requestAPI<IOverview>('overview');
      this.error = null;
    } catch (error) {
      this.error = asApiError(error);
      this.stateChanged.emit();
      throw error; // the poll backs off
    }
    if (this.selectedJob !== null && !this.jobIsFinal()) {
      await this.loadJob(this.selectedJob, false);
    }
    this.stateChanged.emit();
  }

  private jobIsFinal(): boolean {
    const status = this.jobDetail?.job?.status ?? this.jobDetail?.journal?.status;
    return status !== undefined && FINAL_STATUSES.has(status);
  }

  async selectJob(jobId: string | null): Promise<void> {
    this.selectedJob = this.selectedJob === jobId ? null : jobId;
    this.jobDetail = null;
    this.jobDetailError = null;
    this.stateChanged.emit();
    if (this.selectedJob !== null) {
      await this.loadJob(this.selectedJob, true);
    }
  }

  private async loadJob(jobId: string, emit: boolean): Promise<void> {
    try {
      const detail = await requestAPI<IJobDetail>(`jobs/${encodeURIComponent(jobId)}`);
      if (this.selectedJob === jobId) {
        this.jobDetail = detail;
        this.jobDetailError = null;
      }
    } catch (error) {
      this.jobDetailError = asApiError(error).message;
    }
    if (emit) {
      this.stateChanged.emit();
    }
  }

  dismissNotice(): void {
    this.notice = null;
    this.stateChanged.emit();
  }

  /** Highlight one endpoint and scroll to it once (not on every poll). */
  focusEndpoint(id: string | null): void {
    this.focusedEndpoint = id;
    this.scrollTarget = id;
    this.stateChanged.emit();
  }

  takeScrollTarget(): string | null {
    const target = this.scrollTarget;
    this.scrollTarget = null;
    return target;
  }

  /** Run one action; its key marks the buttons busy; success and failure become a notice. */
  async act<T>(key: string, run: () => Promise<T>, describe: (result: T) => string): Promise<void> {
    if (this.busy.has(key)) {
      return;
    }
    this.busy.add(key);
    this.stateChanged.emit();
    try {
      const result = await run();
      this.notice = { level: 'info', text: describe(result) };
    } catch (error) {
      const failure = asApiError(error);
      this.notice = {
        level: 'error',
        text: failure.hint ? `${failure.message} ${failure.hint}` : failure.message
      };
    } finally {
      this.busy.delete(key);
      this.stateChanged.emit();
    }
    await this.refresh();
  }

  purge(endpoint: IEndpoint): Promise<void> {
    return this.act(
      `purge:${endpoint.id}`,
      () =>
        sendAPI<{ removed: number }>(
          'POST',
          `${endpointPath(endpoint.backend, endpoint.id)}/purge-queue`
        ),
      r => `Purged ${r.removed} queued job(s) from ${endpoint.name}.`
    );
  }

  scale(endpoint: IEndpoint, workersMin: number, workersMax: number): Promise<void> {
    return this.act(
      `scale:${endpoint.id}`,
      () =>
        sendAPI<{ endpoint: IEndpoint }>(
          'POST',
          `${endpointPath(endpoint.backend, endpoint.id)}/scale`,
          { workersMin, workersMax }
        ),
      r =>
        `${endpoint.name} now scales between ${r.endpoint.workersMin} and ${r.endpoint.workersMax} workers.`
    );
  }

  remove(endpoint: IEndpoint): Promise<void> {
    return this.act(
      `delete:${endpoint.id}`,
      () =>
        sendAPI<{ templateDeleted: boolean; templateError: string | null }>(
          'DELETE',
          endpointPath(endpoint.backend, endpoint.id)
        ),
      r =>
        `Deleted ${endpoint.name}` +
        (r.templateError
          ? `; its template stays (${r.templateError}).`
          : r.templateDeleted
            ? ' and its template.'
            : '.')
    );
  }

  cancel(jobId: string): Promise<void> {
    return this.act(
      `cancel:${jobId}`,
      () => sendAPI<unknown>('POST', `jobs/${encodeURIComponent(jobId)}/cancel`, {}),
      () => `Cancelled job ${jobId}.`
    ).then(() => this.loadJob(jobId, true));
  }

  startLocal(): Promise<void> {
    return this.act(
      'start:local',
      () => sendAPI<{ started: boolean }>('POST', 'local/start'),
      r => (r.started ? 'Started the embedded RunPod.' : 'The embedded RunPod was already running.')
    );
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.poll.dispose();
    super.dispose();
  }
}

function endpointPath(backend: BackendName, id: string): string {
  return `endpoints/${backend}/${encodeURIComponent(id)}`;
}

function asApiError(error: unknown): ApiError {
  if (error instanceof ApiError) {
    return error;
  }
  return new ApiError(String(error), null, 0);
}
