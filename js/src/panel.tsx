import { closeIcon, refreshIcon, VDomRenderer } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { askScale, confirm } from './dialogs';
import { ago, duration, json, money } from './format';
import { runpodIcon } from './icon';
import { SidebarModel } from './model';
import {
  FINAL_STATUSES,
  IBackend,
  IEndpoint,
  IFinding,
  IHealth,
  IJobDetail,
  IJournalJob,
  WORKER_STATES
} from './types';

export const PANEL_ID = 'runpod-jupyter-sidebar';

/** The left-sidebar panel; it polls only while it is shown. */
export class RunpodPanel extends VDomRenderer<SidebarModel> {
  constructor(model: SidebarModel) {
    super(model);
    this.id = PANEL_ID;
    this.addClass('rp-Panel');
    this.title.icon = runpodIcon;
    this.title.caption = 'RunPod';
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.setVisible(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.setVisible(false);
  }

  protected onUpdateRequest(msg: Message): void {
    super.onUpdateRequest(msg);
    const target = this.model.takeScrollTarget();
    if (target !== null) {
      // React commits after this message: scroll once the row is in the DOM.
      requestAnimationFrame(() => {
        const row = this.node.querySelector(`[data-endpoint-id="${CSS.escape(target)}"]`);
        row?.scrollIntoView({ block: 'nearest' });
      });
    }
  }

  protected render(): React.ReactElement {
    return <Sidebar model={this.model} />;
  }
}

function Sidebar({ model }: { model: SidebarModel }): React.ReactElement {
  const overview = model.overview;
  const now = overview?.generatedAt ?? Date.now() / 1000;
  return (
    <div className="rp-Sidebar">
      <header className="rp-Header">
        <runpodIcon.react tag="span" className="rp-Logo" />
        <span className="rp-Title">RunPod</span>
        <button
          className="jp-Button jp-mod-minimal rp-IconButton"
          title="Refresh now"
          aria-label="Refresh"
          onClick={() => void model.refresh()}
        >
          <refreshIcon.react tag="span" />
        </button>
      </header>
      {model.error && (
        <div className="rp-Banner rp-mod-error" role="alert">
          {model.error.message}
          {model.error.hint && <div className="rp-Hint">{model.error.hint}</div>}
          <div className="rp-Hint">Retrying with backoff.</div>
        </div>
      )}
      {model.notice && (
        <div className={`rp-Banner rp-Notice rp-mod-${model.notice.level}`} role="status">
          <span>{model.notice.text}</span>
          <button
            className="jp-Button jp-mod-minimal rp-IconButton"
            title="Dismiss"
            aria-label="Dismiss"
            onClick={() => model.dismissNotice()}
          >
            <closeIcon.react tag="span" />
          </button>
        </div>
      )}
      {overview === null ? (
        !model.error && <div className="rp-Empty">Loading…</div>
      ) : (
        <>
          <section className="rp-Section rp-Accounts">
            <h3>Account</h3>
            {overview.backends.map(b => (
              <Backend key={b.name} backend={b} model={model} />
            ))}
          </section>
          <section className="rp-Section rp-Endpoints">
            <h3>Endpoints</h3>
            {model.endpoints.length === 0 ? (
              <div className="rp-Empty">
                No endpoints yet. Deploy one with <code>%%runpod_deploy NAME --local</code>.
              </div>
            ) : (
              model.endpoints.map(e => (
                <Endpoint key={`${e.backend}:${e.id}`} endpoint={e} model={model} />
              ))
            )}
          </section>
          <section className="rp-Section rp-Jobs">
            <h3>Recent jobs</h3>
            {overview.jobs.length === 0 ? (
              <div className="rp-Empty">Jobs run from notebooks appear here.</div>
            ) : (
              <ul className="rp-JobList">
                {overview.jobs.map(j => (
                  <Job key={j.id} job={j} now={now} model={model} />
                ))}
              </ul>
            )}
          </section>
        </>
      )}
    </div>
  );
}

function Badge({ backend }: { backend: string }): React.ReactElement {
  return <span className={`rp-Badge rp-mod-${backend}`}>{backend.toUpperCase()}</span>;
}

function Backend({
  backend,
  model
}: {
  backend: IBackend;
  model: SidebarModel;
}): React.ReactElement {
  return (
    <div className={`rp-Backend rp-mod-${backend.state}`} data-backend={backend.name}>
      <Badge backend={backend.name} />
      {backend.state === 'ok' && backend.account ? (
        <span className="rp-Money">
          <span className="rp-Balance" title="Balance">
            {money(backend.account.balance)}
          </span>
          <span className="rp-Spend" title="Spending now, per hour">
            spending {money(backend.account.spendPerHour)}/h
          </span>
        </span>
      ) : (
        <span className="rp-BackendState">
          {backend.message}
          {backend.hint && <span className="rp-Hint"> {backend.hint}</span>}
        </span>
      )}
      {backend.canStart && (
        <button
          className="jp-Button jp-mod-styled jp-mod-accept rp-Action"
          data-action="start-local"
          disabled={model.busy.has('start:local')}
          onClick={() => void model.startLocal()}
        >
          Start
        </button>
      )}
    </div>
  );
}

function WorkerBar({ health }: { health: IHealth | null }): React.ReactElement {
  if (health === null) {
    return <div className="rp-WorkerSummary">health unknown</div>;
  }
  const counts = WORKER_STATES.map(state => [state, health.workers[state] ?? 0] as const);
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  const words = counts.filter(([, n]) => n > 0).map(([state, n]) => `${n} ${state}`);
  return (
    <div className="rp-Workers">
      <div className="rp-WorkerBar" role="img" aria-label={words.join(', ') || 'no workers'}>
        {counts
          .filter(([, n]) => n > 0)
          .map(([state, n]) => (
            <span
              key={state}
              className={`rp-WorkerSegment rp-mod-${state}`}
              data-state={state}
              data-count={n}
              style={{ flexGrow: n }}
              title={`${n} ${state}`}
            />
          ))}
      </div>
      <div className="rp-WorkerSummary">
        {total === 0 ? 'no workers' : words.join(' · ')}
        {!health.registered && ' (no worker has registered yet)'}
      </div>
    </div>
  );
}

const COUNTS: [keyof IHealth['jobs'], string][] = [
  ['inQueue', 'queued'],
  ['inProgress', 'running'],
  ['completed', 'done'],
  ['failed', 'failed'],
  ['retried', 'retried']
];

function Finding({ finding }: { finding: IFinding }): React.ReactElement {
  return (
    <li className={`rp-Finding rp-mod-${finding.level}`} data-code={finding.code}>
      <div className="rp-FindingMessage">{finding.message}</div>
      {finding.fix && <div className="rp-FindingFix">Fix: {finding.fix}</div>}
    </li>
  );
}

function Endpoint({
  endpoint,
  model
}: {
  endpoint: IEndpoint;
  model: SidebarModel;
}): React.ReactElement {
  const e = endpoint;
  const jobs = e.health?.jobs;
  const focused = model.focusedEndpoint === e.id;
  const onScale = async () => {
    const next = await askScale(e.name, { workersMin: e.workersMin, workersMax: e.workersMax });
    if (next !== null) {
      await model.scale(e, next.workersMin, next.workersMax);
    }
  };
  const onPurge = async () => {
    const queued = jobs?.inQueue ?? 0;
    if (
      await confirm(
        `Purge the queue of ${e.name}?`,
        `${queued} queued job(s) will be removed. Running jobs continue.`,
        'Purge'
      )
    ) {
      await model.purge(e);
    }
  };
  const onDelete = async () => {
    const body = `Scale ${e.name} to zero, delete the endpoint and then its template${e.templateName ? ` (${e.templateName})` : ''}. This cannot be undone.`;
    if (await confirm(`Delete ${e.name}?`, body, 'Delete')) {
      await model.remove(e);
    }
  };
  return (
    <div
      className={`rp-Endpoint${focused ? ' rp-mod-focused' : ''}`}
      data-endpoint-id={e.id}
      data-backend={e.backend}
    >
      <div className="rp-EndpointHead">
        <span className="rp-EndpointName" title={e.id}>
          {e.name}
        </span>
        <Badge backend={e.backend} />
        <span className="rp-Scale" title="workersMin–workersMax">
          {e.workersMin}–{e.workersMax} workers
        </span>
      </div>
      <WorkerBar health={e.health} />
      {jobs && (
        <div className="rp-Counts">
          {COUNTS.map(([key, label]) => (
            <span key={key} className="rp-Count" data-count={key}>
              <b>{jobs[key]}</b> {label}
            </span>
          ))}
        </div>
      )}
      <div className="rp-Pools">
        {e.gpuPools.map(p => (
          <span key={p.id} className="rp-Pool" title={p.examples}>
            {p.id}
            {p.memoryGb !== null && ` · ${p.memoryGb} GB`}
            {p.pricePerHour !== null && ` · ${money(p.pricePerHour)}/h`}
            {e.stock?.[p.id] && (
              <span
                className={`rp-Stock rp-mod-${e.stock[p.id].toLowerCase()}`}
                data-stock={e.stock[p.id]}
                title="GPU stock now"
              >
                {' · '}
                {e.stock[p.id]}
              </span>
            )}
          </span>
        ))}
      </div>
      {e.rollout && (
        <div
          className="rp-Rollout"
          data-in-progress={String(e.rollout.inProgress)}
          title={e.rollout.changed.length ? `changed ${e.rollout.changed.join(', ')}` : undefined}
        >
          {e.rollout.summary || `release ${e.rollout.version}`}
          {e.rollout.inProgress && ' · rolling out'}
          {!!e.stale && <span className="rp-Stale">{` · ${e.stale} stale`}</span>}
        </div>
      )}
      {e.error && <div className="rp-Banner rp-mod-error">{e.error}</div>}
      {e.findings.length > 0 && (
        <ul className="rp-Findings">
          {e.findings.map(f => (
            <Finding key={f.code} finding={f} />
          ))}
        </ul>
      )}
      <div className="rp-Actions">
        <button
          className="jp-Button jp-mod-styled rp-Action"
          data-action="scale"
          disabled={model.busy.has(`scale:${e.id}`)}
          onClick={() => void onScale()}
        >
          Scale…
        </button>
        <button
          className="jp-Button jp-mod-styled rp-Action"
          data-action="purge"
          title="Remove the queued jobs"
          disabled={model.busy.has(`purge:${e.id}`)}
          onClick={() => void onPurge()}
        >
          Purge
        </button>
        <button
          className="jp-Button jp-mod-styled jp-mod-warn rp-Action"
          data-action="delete"
          disabled={model.busy.has(`delete:${e.id}`)}
          onClick={() => void onDelete()}
        >
          Delete
        </button>
      </div>
    </div>
  );
}

function Job({
  job,
  now,
  model
}: {
  job: IJournalJob;
  now: number;
  model: SidebarModel;
}): React.ReactElement {
  const selected = model.selectedJob === job.id;
  return (
    <li
      className={`rp-Job${selected ? ' rp-mod-selected' : ''}`}
      data-job-id={job.id}
      data-status={job.status}
    >
      <button
        className="rp-JobRow"
        aria-expanded={selected}
        onClick={() => void model.selectJob(job.id)}
      >
        <span className="rp-JobLine">
          <span className={`rp-Status rp-mod-${job.status.toLowerCase()}`}>{job.status}</span>
          <span className="rp-JobEndpoint">{job.endpointName || job.endpointId}</span>
        </span>
        <span className="rp-JobLine rp-mod-meta">
          <span className="rp-JobTimes" title="time in queue · time running">
            waited {duration(job.delayMs)} · ran {duration(job.executionMs)}
          </span>
          <span className="rp-JobAgo">{ago(job.submittedAt, now)}</span>
        </span>
      </button>
      {selected && <JobDetail model={model} job={job} />}
    </li>
  );
}

function JobDetail({ model, job }: { model: SidebarModel; job: IJournalJob }): React.ReactElement {
  const detail: IJobDetail | null = model.jobDetail;
  if (model.jobDetailError) {
    return <div className="rp-JobDetail rp-Banner rp-mod-error">{model.jobDetailError}</div>;
  }
  if (detail === null) {
    return <div className="rp-JobDetail rp-Empty">Loading…</div>;
  }
  const status = detail.job?.status ?? job.status;
  const final = FINAL_STATUSES.has(status);
  const start = detail.timeline?.createdAt ?? job.submittedAt;
  const onCancel = async () => {
    if (
      await confirm(
        `Cancel job ${job.id}?`,
        'The job is removed from the queue, or stopped if it runs.',
        'Cancel job'
      )
    ) {
      await model.cancel(job.id);
    }
  };
  return (
    <div className="rp-JobDetail">
      <div className="rp-JobId">
        {job.id} · <Badge backend={detail.backend} /> · input <code>{job.inputPreview}</code>
      </div>
      {detail.jobError && <div className="rp-Banner rp-mod-error">{detail.jobError}</div>}
      {detail.job?.reason && <div className="rp-Reason">{detail.job.reason}</div>}
      {detail.job?.output !== undefined && detail.job?.output !== null && (
        <>
          <div className="rp-Label">Output{detail.job.outputTruncated && ' (truncated)'}</div>
          <pre className="rp-Output">{json(detail.job.output)}</pre>
        </>
      )}
      {detail.job?.error !== undefined && detail.job?.error !== null && (
        <>
          <div className="rp-Label">Error</div>
          <pre className="rp-Output rp-mod-error">{json(detail.job.error)}</pre>
        </>
      )}
      {detail.timeline && detail.timeline.events.length > 0 && (
        <>
          <div className="rp-Label">Timeline</div>
          <ol className="rp-Timeline">
            {detail.timeline.events.map(([t, kind, what], i) => (
              <li key={i} data-event={kind}>
                <span className="rp-TimelineAt">+{duration((t - start) * 1000)}</span> {kind}
                {what && <span className="rp-Hint"> {what}</span>}
              </li>
            ))}
          </ol>
        </>
      )}
      {!final && (
        <button
          className="jp-Button jp-mod-styled jp-mod-warn rp-Action"
          data-action="cancel"
          disabled={model.busy.has(`cancel:${job.id}`)}
          onClick={() => void onCancel()}
        >
          Cancel job
        </button>
      )}
    </div>
  );
}
