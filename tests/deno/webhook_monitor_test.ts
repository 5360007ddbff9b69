// Unit tests of integrations/supabase/functions/_shared/webhook_monitor.ts under Deno: the
// classifier on real errors (Stripe's SDK classes, fetch against a refused port and a server
// that never answers), the depth check, and the request handler with a recording database
// passed in (the real database is exercised by tests/integrations/test_webhook_conformance.py).
import Stripe from "npm:stripe@23.2.0";
import {
  type Claim,
  classify,
  type Delivery,
  type Failure,
  jsonDepthExceeds,
  monitorStripeWebhook,
  PayloadError,
  type TrackingDatabase,
} from "../../integrations/supabase/functions/_shared/webhook_monitor.ts";

function assertEquals(actual: unknown, expected: unknown, what = "") {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  if (a !== e) throw new Error(`${what} expected ${e}, got ${a}`);
}

const verdict = (err: unknown) => {
  const { category, retryable } = classify(err);
  return { category, retryable };
};

Deno.test("Stripe SDK errors: rate limits and connections are transient, the rest permanent", () => {
  assertEquals(verdict(new Stripe.errors.StripeRateLimitError({ message: "slow down" })), { category: "stripe", retryable: true });
  assertEquals(verdict(new Stripe.errors.StripeConnectionError({ message: "reset" })), { category: "stripe", retryable: true });
  assertEquals(verdict(new Stripe.errors.StripeAPIError({ message: "oops" })), { category: "stripe", retryable: true });
  assertEquals(verdict(new Stripe.errors.StripeAuthenticationError({ message: "bad key" })), { category: "stripe", retryable: false });
  assertEquals(verdict(new Stripe.errors.StripeInvalidRequestError({ message: "no such session" })), { category: "stripe", retryable: false });
});

Deno.test("the app's PayloadError and unparsable values are validation; anything else unknown", () => {
  assertEquals(verdict(new PayloadError("no registration")), { category: "validation", retryable: false });
  let parseError: unknown;
  try {
    JSON.parse("{");
  } catch (err) {
    parseError = err;
  }
  assertEquals(verdict(parseError), { category: "validation", retryable: false });
  assertEquals(verdict(new Error("something else")), { category: "unknown", retryable: true });
  // A wrapped deadlock is still a deadlock: the cause chain is read, specific rules first.
  const deadlock = Object.assign(new Error("deadlock"), { name: "PostgresError", code: "40P01" });
  assertEquals(verdict(new SyntaxError("wrapped", { cause: deadlock })), { category: "database", retryable: true });
});

Deno.test("PostgREST errors (supabase-js): SQLSTATEs by the policy's table, PGRST codes database", () => {
  const postgrest = (code: string) => ({ code, details: null, hint: null, message: `failed ${code}` });
  assertEquals(verdict(postgrest("40001")), { category: "database", retryable: true });
  assertEquals(verdict(postgrest("23502")), { category: "validation", retryable: false });
  assertEquals(verdict(postgrest("23505")), { category: "database", retryable: true });
  assertEquals(verdict(postgrest("PGRST301")), { category: "database", retryable: true });
});

Deno.test("fetch: a refused connection and a timeout are network failures a retry can fix", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // nothing listens there now
  const refused = await fetch(`http://127.0.0.1:${port}/`).catch((err) => err);
  assertEquals(verdict(refused), { category: "network", retryable: true }, "refused");

  // A server that accepts the connection and never answers.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    const url = `http://127.0.0.1:${(silent.addr as Deno.NetAddr).port}/`;
    const timedOut = await fetch(url, { signal: AbortSignal.timeout(100) }).catch((err) => err);
    assertEquals(verdict(timedOut), { category: "network", retryable: true }, "timeout");
  } finally {
    silent.close();
    held.forEach((conn) => conn.close());
    await accepting.catch(() => {});
  }
});

Deno.test("the depth check counts brackets outside strings only", () => {
  const nest = (n: number) => "[".repeat(n) + "]".repeat(n);
  assertEquals(jsonDepthExceeds(nest(64)), false);
  assertEquals(jsonDepthExceeds(nest(65)), true);
  assertEquals(jsonDepthExceeds(`{"a": "${"[".repeat(100)}\\""}`), false);
});

/** Records what the monitor asks of the database; every event is new. */
function recordingDatabase() {
  const calls: string[] = [];
  const failures: Failure[] = [];
  const database: TrackingDatabase = {
    mode: "rpc",
    begin(d: Delivery): Promise<Claim> {
      calls.push(`begin ${d.eventId} ${d.source}`);
      return Promise.resolve({
        decision: "process",
        attempt: 1,
        async run(work) {
          const args = await work(null);
          calls.push(`complete ${args.outcome}`);
          return true;
        },
        fail(f) {
          failures.push(f);
          calls.push(`fail ${f.category}`);
          return Promise.resolve(true);
        },
        close: () => Promise.resolve(),
      });
    },
  };
  return { database, calls, failures };
}

const provider = Stripe.createSubtleCryptoProvider();

async function signed(body: string, secret: string, headers: Record<string, string> = {}): Promise<Request> {
  const signature = await Stripe.webhooks.generateTestHeaderStringAsync({ payload: body, secret, cryptoProvider: provider });
  return new Request("http://function.test/any/path", {
    method: "POST", body, headers: { "stripe-signature": signature, ...headers },
  });
}

const EVENT = JSON.stringify({ id: "evt_unit_1", type: "checkout.session.completed", created: 1_700_000_000, data: {} });

Deno.test("the handler: every secret verifies, a wrong one is refused before the database", async () => {
  const { database, calls } = recordingDatabase();
  const handle = monitorStripeWebhook({ secrets: "whsec_new, whsec_old", database, log: () => {}, handle: () => Promise.resolve("done") });
  assertEquals((await handle(await signed(EVENT, "whsec_wrong"))).status, 400);
  assertEquals(calls, []);
  const answer = await handle(await signed(EVENT, "whsec_old", { "Webhook-Monitor-Source": "retry" }));
  assertEquals([answer.status, (await answer.json()).outcome], [200, "done"]);
  assertEquals(calls, ["begin evt_unit_1 retry", "complete done"]);
  assertEquals((await handle(new Request("http://function.test/", { method: "GET" }))).status, 405);
});

Deno.test("the handler answers by the policy: validation 200 without retry, a timeout 500", async () => {
  const { database, failures } = recordingDatabase();
  let error: unknown = new PayloadError("paid session matches no registration");
  const handle = monitorStripeWebhook({ secrets: "whsec_new", database, log: () => {}, handle: () => Promise.reject(error) });
  let answer = await handle(await signed(EVENT, "whsec_new"));
  const body = await answer.json();
  assertEquals([answer.status, body.status, body.retry, body.error_category], [200, "failed", false, "validation"]);
  error = new DOMException("signal timed out", "TimeoutError");
  answer = await handle(await signed(EVENT, "whsec_new"));
  assertEquals([answer.status, (await answer.json()).retry], [500, true]);
  assertEquals(failures.map((f) => [f.category, f.retryable]), [["validation", false], ["network", true]]);
});

Deno.test("without a secret the monitor refuses to start", () => {
  const { database } = recordingDatabase();
  let message = "";
  try {
    monitorStripeWebhook({ secrets: " , ", database, handle: () => Promise.resolve() });
  } catch (err) {
    message = (err as Error).message;
  }
  assertEquals(message.startsWith("STRIPE_WEBHOOK_SECRET is not set"), true);
});
