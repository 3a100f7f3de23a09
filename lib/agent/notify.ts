/**
 * The agent's notification hook (healthchecks-style): after a run, POST a JSON
 * summary to the URL the policy's variables name. The URLs come from the
 * environment because a ping URL is a credential; the body holds no secret.
 * A failed or slow call is reported, never a reason to fail the backup.
 */
import type { Environment } from "../config/env.ts";
import type { NotifySettings } from "../policy/policy.ts";

export interface RunSummary {
  policy_id: string;
  status: "ok" | "partial" | "failed";
  exit_code: number;
  backup_id?: string;
  timestamp?: string;
  host: string;
  files?: number;
  bytes?: number;
  compressed_bytes?: number;
  duration_ms: number;
  warnings?: number;
  error?: { code: string; message: string };
}

export type NotifyOutcome =
  | { sent: false; reason: "not configured" }
  | { sent: true; variable: string; status: number }
  | { sent: false; variable: string; error: string };

export async function notifyRun(
  settings: NotifySettings,
  env: Environment,
  summary: RunSummary,
): Promise<NotifyOutcome> {
  const failureUrl = env[settings.failure_url_env];
  const useFailure = summary.status === "failed" && failureUrl;
  const variable = useFailure ? settings.failure_url_env : settings.url_env;
  const url = env[variable];
  if (!url) return { sent: false, reason: "not configured" };
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(summary),
      signal: AbortSignal.timeout(settings.timeout_seconds * 1000),
    });
    await response.body?.cancel();
    if (!response.ok) return { sent: false, variable, error: `HTTP ${response.status}` };
    return { sent: true, variable, status: response.status };
  } catch (error) {
    // The URL itself is never echoed: it may embed a token.
    const reason = error instanceof DOMException && error.name === "TimeoutError"
      ? `no answer within ${settings.timeout_seconds} s`
      : error instanceof Error
      ? error.name
      : "request failed";
    return { sent: false, variable, error: reason };
  }
}
