import assert from "node:assert/strict";
import { notifyRun, type RunSummary } from "./notify.ts";

const settings = {
  url_env: "INTELLISTOR_NOTIFY_URL",
  failure_url_env: "INTELLISTOR_NOTIFY_FAILURE_URL",
  timeout_seconds: 5,
};
const summary: RunSummary = {
  policy_id: "p",
  status: "ok",
  exit_code: 0,
  host: "h",
  duration_ms: 1,
};

Deno.test("notifyRun() says why a ping failed, never quoting the URL (it may hold a token)", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const token = "s3cr3t-token";
  const cases: [string, RegExp][] = [
    [`http://127.0.0.1:${closedPort}/ping/${token}`, /^connection refused$/],
    [`not a url ${token}`, /valid http\(s\) URL/],
    [`ftp://example.com/${token}`, /valid http\(s\) URL/],
  ];
  for (const [url, reason] of cases) {
    const outcome = await notifyRun(settings, { INTELLISTOR_NOTIFY_URL: url }, summary);
    assert.equal(outcome.sent, false);
    const error = "error" in outcome ? outcome.error : "";
    assert.match(error, reason, url);
    assert.ok(!JSON.stringify(outcome).includes(token), JSON.stringify(outcome));
  }
});
