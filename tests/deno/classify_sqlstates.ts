// Prints, as JSON, what webhook_monitor.ts's classifier makes of a PostgreSQL error with each
// SQLSTATE given on the command line (postgres.js raises them as PostgresError with `code`);
// tests/tracking/test_edge_rules.py compares it with core/error_policy.py's classifier.
import { classify, isTransient } from "../../integrations/supabase/functions/_shared/webhook_monitor.ts";

const verdicts = Object.fromEntries(Deno.args.map((code) => {
  const err = Object.assign(new Error(`failed with ${code}`), { name: "PostgresError", code, severity: "ERROR" });
  const verdict = classify(err);
  return [code, { category: verdict.category, retryable: verdict.retryable, transient: isTransient(verdict) }];
}));
console.log(JSON.stringify(verdicts));
