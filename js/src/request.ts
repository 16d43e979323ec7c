import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A refusal or failure of the sidebar API, with what to do next when the server said. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly hint: string | null,
    readonly status: number
  ) {
    super(message);
  }
}

/**
 * Call `/runpod-jupyter/api/<path>`. Token and XSRF are handled by `ServerConnection`;
 * non-2xx answers become an `ApiError` carrying the server's message and hint.
 */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  query: Record<string, string> = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url =
    URLExt.join(settings.baseUrl, 'runpod-jupyter', 'api', path) +
    URLExt.objectToQueryString(query);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError('Jupyter did not answer.', 'Is the Jupyter server still running?', 0);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    throw new ApiError(data?.message ?? response.statusText, data?.hint ?? null, response.status);
  }
  return data as T;
}

/** POST/DELETE with a JSON body. */
export function sendAPI<T>(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  return requestAPI<T>(path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' }
  });
}
