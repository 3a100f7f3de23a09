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
    const reason = error instanceof DOMException && error.name === "TimeoutError"
      ? `no answer within ${settings.timeout_seconds} s`
      : whyRequestFailed(error);
    return { sent: false, variable, error: reason };
  }
}

/** Known causes of a failed request, by their words in Deno's messages. */
const REQUEST_FAILURES: [RegExp, string][] = [
  [
    /Invalid URL|scheme .* not supported|relative URL/i,
    "the variable does not hold a valid http(s) URL",
  ],
  [/Connection refused/i, "connection refused"],
  [/dns error|failed to lookup|Name or service not known|No such host/i, "host name not found"],
  [/Connection reset|connection closed/i, "connection closed by the server"],
  [/certificate|tls|ssl/i, "TLS error (certificate?)"],
  [/unreachable/i, "network unreachable"],
  [/are blocked/i, "port not allowed for requests"],
];

/**
 * Why the request failed, in a few words. Deno's message itself is never
 * echoed: it quotes the URL, which may embed a token.
 */
function whyRequestFailed(error: unknown): string {
  const messages: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    messages.push(e.message);
  }
  // Without the URL and quoted values (a host named "ssl.example.com" is no TLS error).
  const text = messages.join(" | ").replace(/'[^']*'/g, "''").replace(
    /\b[a-z][a-z0-9+.-]*:\/\/[^\s)]*/gi,
    "<url>",
  );
  for (const [pattern, reason] of REQUEST_FAILURES) if (pattern.test(text)) return reason;
  return error instanceof Error ? `${error.name}: request failed` : "request failed";
}
