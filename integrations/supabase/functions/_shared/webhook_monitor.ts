/**
 * Webhook monitoring for a Stripe webhook Edge Function: copy this folder (`_shared/`) into
 * `supabase/functions/` and wrap the function's own handler.
 *
 * ```ts
 * import { directDatabase, monitorStripeWebhook } from "../_shared/webhook_monitor.ts";
 *
 * const handler = monitorStripeWebhook({
 *   secrets: Deno.env.get("STRIPE_WEBHOOK_SECRET"),
 *   database: directDatabase(Deno.env.get("SUPABASE_DB_URL")!),
 *   handle: async (event, attempt) => {
 *     // attempt.sql: the transaction webhook_event_complete commits in (direct mode)
 *     return "registration_completed";
 *   },
 * });
 * Deno.serve(handler);
 * ```
 *
 * What it does for every POST, as the project's reference receiver (tracking/receiver.py):
 * checks `Stripe-Signature` against every secret in STRIPE_WEBHOOK_SECRET (rotation), 300 s
 * either side of now; records the delivery with `webhook_event_begin` (`Webhook-Monitor-Source`
 * says whether `jobs retry` or `sweep --replay` sent it); runs the handler once per event
 * (duplicates answered 200, a delivery racing another one 409); marks it completed, or failed
 * with the category the error policy gives the handler's error, and answers by that policy:
 * a failure a retry can fix 5xx, one it cannot (a `PayloadError`) 200 with `"retry": false`.
 * A signed body that is not a JSON event, or that PostgreSQL cannot store as jsonb (`\u0000`,
 * nesting deeper than 64), is still recorded, as text, failed with category `validation`.
 *
 * Two ways to reach the database; nothing else in the app needs to use the same one:
 * - `directDatabase(SUPABASE_DB_URL)` (postgres.js): the handler's work and
 *   `webhook_event_complete` commit in one transaction, and the attempt holds the event's
 *   liveness lock for the whole handling, so an isolate killed mid-way leaves an event the
 *   next delivery takes over at once.
 * - `rpcDatabase(supabase)` (supabase-js `.rpc()` with the service-role key): each call is its
 *   own transaction and no lock is held; an attempt whose isolate died is taken over once
 *   MONITOR_RECLAIM_MINUTES have passed. The handler's writes must then be conditional.
 */
import Stripe from "npm:stripe@23.2.0";
import postgres from "npm:postgres@3.4.10";
import { RULES } from "./error_policy.ts";

export type Category = (typeof RULES.categories)[number];
export type Source = (typeof RULES.attemptSources)[number];

/** Throw it (or a subclass) for "this payload can never be processed as it is": recorded
 * failed with category `validation`, answered 200 with `"retry": false` so Stripe stops, and
 * left for a person, who retries it from the monitor after a fix. */
export class PayloadError extends Error {
  override name = "PayloadError";
}

/** What the handler returns: the outcome label stored on the event, and the registration it
 * changed (or just the label). `"ignored"` for event types the app does not handle. */
export type HandlerResult = string | { outcome: string; registrationId?: string | null } | void;

/** The running attempt the handler is given. */
export interface Attempt {
  eventId: string;
  eventType: string;
  attempt: number;
  source: Source;
  /** Direct mode: the transaction `webhook_event_complete` commits in. rpc mode: null. */
  sql: postgres.Sql | null;
  /** Anything added here lands in `error_details.context` if the attempt fails. */
  context: Record<string, unknown>;
}

export type Handler = (event: Stripe.Event, attempt: Attempt) => Promise<HandlerResult>;

/** A classification of one failure, by the project's error policy. */
export interface Classification {
  category: Category;
  retryable: boolean;
  reason: string;
}

// --- the classifier ----------------------------------------------------------------------

const SQLSTATE = /^[0-9A-Z]{5}$/;
const POSTGRES_CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT",
  "SASL_SIGNATURE_MISMATCH", "MAX_PARAMETERS_EXCEEDED",
]);
const SOCKET_CODES = /^(E(CONNREFUSED|CONNRESET|CONNABORTED|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|NOTFOUND|AI_AGAIN)|UND_ERR)/;
const NETWORK_ERRORS = ["ConnectionRefused", "ConnectionReset", "ConnectionAborted", "TimedOut",
  "NotConnected", "BrokenPipe", "AddrNotAvailable"] as const;

function field(err: unknown, name: string): unknown {
  return typeof err === "object" && err !== null ? (err as Record<string, unknown>)[name] : undefined;
}

function nameOf(err: unknown): string {
  const name = field(err, "name");
  return typeof name === "string" ? name : typeof err;
}

function sqlstateRule(code: string, name: string): Classification {
  for (const key of [code, code.slice(0, 2)]) {
    const rule = (RULES.sqlstates as Record<string, { category: Category; retryable: boolean }>)[key];
    if (rule) return { category: rule.category, retryable: rule.retryable, reason: `SQLSTATE ${code} (${name})` };
  }
  return { ...RULES.unlistedSqlstate, reason: `SQLSTATE ${code} (${name})` };
}

function payloadRule(err: unknown): Classification | null {
  return err instanceof PayloadError ? { category: "validation", retryable: false, reason: nameOf(err) } : null;
}

function stripeRule(err: unknown): Classification | null {
  if (!(err instanceof Stripe.errors.StripeError)) return null;
  const name = err.type || nameOf(err);
  if (err instanceof Stripe.errors.StripeRateLimitError || err instanceof Stripe.errors.StripeConnectionError) {
    return { category: "stripe", retryable: true, reason: name };
  }
  if (
    err instanceof Stripe.errors.StripeAuthenticationError || err instanceof Stripe.errors.StripePermissionError ||
    err instanceof Stripe.errors.StripeInvalidRequestError || err instanceof Stripe.errors.StripeCardError ||
    err instanceof Stripe.errors.StripeSignatureVerificationError ||
    err instanceof Stripe.errors.StripeIdempotencyError
  ) {
    return { category: "stripe", retryable: false, reason: name };
  }
  const status = err.statusCode;
  const transient = err instanceof Stripe.errors.StripeAPIError || status === undefined || status >= 500 ||
    status === 429;
  return { category: "stripe", retryable: transient, reason: status ? `${name} (HTTP ${status})` : name };
}

function databaseRule(err: unknown): Classification | null {
  const code = field(err, "code");
  if (typeof code !== "string") return null;
  const name = nameOf(err);
  // postgres.js raises PostgresError with the SQLSTATE in `code`; supabase-js hands back
  // PostgREST's error (code, details, hint): a SQLSTATE, or PGRSTnnn for PostgREST's own.
  const fromPostgrest = "details" in (err as object) && "hint" in (err as object);
  if ((name === "PostgresError" || fromPostgrest) && SQLSTATE.test(code)) return sqlstateRule(code, name);
  if (fromPostgrest && code.startsWith("PGRST")) return { category: "database", retryable: true, reason: `PostgREST ${code}` };
  if (POSTGRES_CONNECTION_CODES.has(code)) return { category: "database", retryable: true, reason: `no connection (${code})` };
  return null;
}

function networkRule(err: unknown): Classification | null {
  const name = nameOf(err);
  if (err instanceof DOMException && (name === "TimeoutError" || name === "AbortError")) {
    return { category: "network", retryable: true, reason: name };
  }
  for (const kind of NETWORK_ERRORS) {
    if (err instanceof Deno.errors[kind]) return { category: "network", retryable: true, reason: kind };
  }
  const code = field(err, "code");
  if (typeof code === "string" && SOCKET_CODES.test(code)) return { category: "network", retryable: true, reason: code };
  // fetch() rejects with a TypeError when the request could not be sent or answered.
  if (err instanceof TypeError && /fetch|network|connect|request|dns/i.test(err.message)) {
    return { category: "network", retryable: true, reason: "fetch failed" };
  }
  if (err instanceof HttpStatusError) {
    const s = err.status;
    return { category: "network", retryable: s === 408 || s === 425 || s === 429 || s >= 500, reason: `HTTP ${s}` };
  }
  return null;
}

function genericValueRule(err: unknown): Classification | null {
  // A value the handler cannot parse fails the same way every time (as Python's ValueError).
  if (err instanceof SyntaxError || err instanceof RangeError) {
    return { category: "validation", retryable: false, reason: nameOf(err) };
  }
  return null;
}

/** A non-2xx answer from a service the handler calls (throw it after `fetch`): network,
 * retryable for 408, 425, 429 and 5xx. */
export class HttpStatusError extends Error {
  override name = "HttpStatusError";
  constructor(readonly status: number, message?: string) {
    super(message ?? `HTTP ${status}`);
  }
}

function* chain(err: unknown): Generator<unknown> {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current !== undefined && current !== null && !seen.has(current)) {
    seen.add(current);
    yield current;
    current = field(current, "cause");
  }
}

const RULE_ORDER = [payloadRule, stripeRule, databaseRule, networkRule];

/** The category of a failure and whether a retry can help: the error and its `cause` chain,
 * outermost first, by core/error_policy.py's rules (the SQLSTATE table comes from there). */
export function classify(err: unknown): Classification {
  for (const rules of [RULE_ORDER, [genericValueRule]]) {
    for (const link of chain(err)) {
      for (const rule of rules) {
        const found = rule(link);
        if (found) return found;
      }
    }
  }
  return { category: "unknown", retryable: true, reason: nameOf(err) };
}

/** Transient failures are answered 5xx (Stripe retries); the rest 2xx with "retry": false. */
export function isTransient(verdict: Classification): boolean {
  return verdict.retryable && RULES.policy[verdict.category].retries;
}

export function recoveryAction(verdict: Classification): string {
  const policy = RULES.policy[verdict.category];
  return isTransient(verdict) ? policy.recoveryAction : policy.recoveryActionExhausted;
}

// --- the database ------------------------------------------------------------------------

export type Decision = "process" | "skip_duplicate" | "retry_later";

/** What the tracking functions are given for one delivery. */
export interface Delivery {
  eventId: string;
  eventType: string;
  payload: string; // JSON text stored as jsonb
  rawPayload: string | null; // the body, when payload is a placeholder
  createdAt: Date | null;
  livemode: boolean;
  source: Source;
}

export interface Failure {
  message: string;
  details: Record<string, unknown>;
  category: Category;
  retryable: boolean;
}

/** One claim from webhook_event_begin; `close` must follow every claim (after `run` or
 * `fail` for a 'process' one): it lets the attempt's session and its lock go. */
export interface Claim {
  decision: Decision;
  attempt: number;
  /** Runs the work, then marks the attempt completed: in the work's transaction in direct
   * mode. Resolves false when another attempt took the event over meanwhile (rolled back). */
  run(work: (sql: postgres.Sql | null) => Promise<CompleteArgs>): Promise<boolean>;
  fail(failure: Failure): Promise<boolean>;
  close(): Promise<void>;
}

export interface CompleteArgs {
  outcome: string | null;
  registrationId: string | null;
}

/** How the monitor reaches the tracking functions: `directDatabase` or `rpcDatabase`. */
export interface TrackingDatabase {
  /** Record the delivery and claim the event (webhook_event_begin, committed at once). */
  begin(delivery: Delivery): Promise<Claim>;
  readonly mode: "direct" | "rpc";
}

/** A failure that could not be recorded: the event stays 'processing' for the next delivery. */
export class FailureNotRecorded extends Error {
  override name = "FailureNotRecorded";
}

function reclaimMinutes(given?: number): number {
  if (given !== undefined) return given;
  const text = Deno.env.get("MONITOR_RECLAIM_MINUTES");
  const value = text ? Number(text) : 5;
  return Number.isInteger(value) && value >= 1 ? value : 5;
}

/** libpq-style URLs may name a Unix socket folder as `?host=/path`; postgres.js takes it as
 * `path`. Anything else goes to postgres.js as is. */
function connectionOptions(url: string): { url: string; options: postgres.Options<Record<string, never>> } {
  // An empty host (`postgres://user@/db?host=/run/postgresql`) is no valid URL: name one.
  const parsed = new URL(url.replace(/^postgresql(\+\w+)?:/, "postgres:").replace(/^(postgres:\/\/[^/?#]*@)(?=[/?#])/, "$1localhost"));
  const socketHost = parsed.searchParams.get("host");
  const options: postgres.Options<Record<string, never>> = {};
  if (socketHost?.startsWith("/")) {
    parsed.searchParams.delete("host");
    const port = parsed.searchParams.get("port") ?? (parsed.port || "5432");
    parsed.searchParams.delete("port");
    options.path = `${socketHost}/.s.PGSQL.${port}`;
    options.host = socketHost;
  }
  return { url: parsed.toString(), options };
}

/** The attempt's database session ended (a failover, a terminated backend, a lost socket):
 * its transaction and its liveness lock are gone, and nothing more is sent on its behalf. */
export class SessionLost extends Error {
  override name = "SessionLost";
  readonly code = "CONNECTION_CLOSED"; // classified like postgres.js's own: database, retryable
}

/** One database session: a single-connection postgres.js client. `generation` counts its
 * connections closed, so an attempt knows whether the session it started on still exists
 * (postgres.js reconnects a single-connection client by itself on its next query). */
interface Session {
  sql: postgres.Sql;
  generation: number;
}

/** At most `max` sessions, each used by one attempt at a time; attempts beyond wait. */
class Sessions {
  private idle: Session[] = [];
  private waiting: ((session: Session) => void)[] = [];
  private opened = 0;

  constructor(private readonly open: (session: Session) => postgres.Sql, private readonly max: number) {}

  acquire(): Promise<Session> {
    const session = this.idle.pop();
    if (session) return Promise.resolve(session);
    if (this.opened < this.max) {
      this.opened++;
      const fresh: Session = { sql: null as unknown as postgres.Sql, generation: 0 };
      fresh.sql = this.open(fresh);
      return Promise.resolve(fresh);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(session: Session): void {
    const next = this.waiting.shift();
    if (next) next(session);
    else this.idle.push(session);
  }
}

/**
 * The direct connection (SUPABASE_DB_URL, postgres.js). Each attempt runs on one session
 * that took the event's liveness lock before claiming it (webhook_event_lock,
 * migrations/functions/tracking.sql) and keeps it until the outcome is recorded: if the
 * isolate dies, PostgreSQL frees the lock and the next delivery takes the event over at
 * once. The handler gets that session (`attempt.sql`) inside the transaction
 * `webhook_event_complete` commits in; should the session end mid-way, every further
 * statement of the attempt fails with `SessionLost` instead of running, uncommitted work
 * and all, on a new connection.
 * `max`: sessions per isolate (each is one PostgreSQL connection).
 */
export function directDatabase(
  url: string,
  { staleAfterMinutes, max = 10 }: { staleAfterMinutes?: number; max?: number } = {},
): TrackingDatabase {
  const { url: target, options } = connectionOptions(url);
  const sessions = new Sessions((session) =>
    postgres(target, {
      ...options, max: 1, prepare: false, onnotice: () => {},
      onclose: () => session.generation++,
      connection: { application_name: "stripe-webhook" },
    }), max);
  const staleAfter = `${reclaimMinutes(staleAfterMinutes)} minutes`;
  return {
    mode: "direct",
    async begin(d: Delivery): Promise<Claim> {
      const session = await sessions.acquire();
      const sql = session.sql;
      let generation = session.generation;
      let locked = false;
      const alive = () => session.generation === generation;
      let released = false;
      const letGo = async () => { // once: a session goes back to the idle list one time only
        if (released) return;
        released = true;
        try {
          if (locked && alive()) await sql`SELECT public.webhook_event_release(${d.eventId})`;
        } finally {
          locked = false;
          sessions.release(session);
        }
      };
      let row: { decision: Decision; attempt: number };
      try {
        [{ locked }] = await sql`SELECT public.webhook_event_lock(${d.eventId}) AS locked`;
        generation = session.generation; // the connection the lock is held on
        [row] = await sql`
          SELECT decision, attempt FROM public.webhook_event_begin(
            ${d.eventId}, ${d.eventType}, ${d.payload}::text::jsonb, ${d.createdAt}::timestamptz,
            ${d.livemode}, ${staleAfter}::interval, ${d.source}, ${d.rawPayload}::text)`;
      } catch (err) {
        await letGo().catch(() => {});
        throw err;
      }
      if (row.decision !== "process") await letGo();
      // The handler's statements run only while the attempt's session lives.
      const guarded = new Proxy(sql, {
        apply(fn, self, args) {
          if (!alive()) throw new SessionLost(`the database session of ${d.eventId}'s attempt has ended`);
          return Reflect.apply(fn, self, args);
        },
      });
      const failOn = async (f: Failure) => {
        const [{ ok }] = await sql`
          SELECT public.webhook_event_fail(${d.eventId}, ${f.message}, ${sql.json(f.details as postgres.JSONValue)},
                                           ${f.category}, ${row.attempt}, ${f.retryable}) AS ok`;
        return ok as boolean;
      };
      return {
        decision: row.decision,
        attempt: row.attempt,
        async run(work) {
          let completed = false;
          await guarded`BEGIN`;
          try {
            const args = await work(guarded);
            [{ completed }] = await guarded`
              SELECT public.webhook_event_complete(${d.eventId}, ${args.outcome}, ${args.registrationId}::uuid,
                                                   ${row.attempt}) AS completed`;
            // Another attempt took the event over: none of this counts.
            await (completed ? guarded`COMMIT` : guarded`ROLLBACK`);
          } catch (err) {
            if (alive()) await sql`ROLLBACK`.catch(() => {});
            throw err;
          }
          return completed;
        },
        async fail(f) {
          // On the attempt's session, or on a new one when it has ended (its lock went with it).
          try {
            return await failOn(f);
          } catch (err) {
            if (alive()) throw new FailureNotRecorded(`the failure of ${d.eventId} could not be recorded`, { cause: err });
            try {
              return await failOn(f);
            } catch (again) {
              throw new FailureNotRecorded(`the failure of ${d.eventId} could not be recorded`, { cause: again });
            }
          }
        },
        close: letGo,
      };
    },
  };
}

/** The part of a supabase-js client `rpcDatabase` uses (SupabaseClient fits). */
export interface RpcClient {
  // deno-lint-ignore no-explicit-any
  rpc(fn: string, args?: Record<string, unknown>): PromiseLike<{ data: any; error: any }>;
}

/**
 * supabase-js `.rpc()` with the service-role key. Each call is its own transaction: the
 * handler's writes and `webhook_event_complete` cannot commit together, and no liveness lock
 * is held, so an attempt whose isolate died is taken over after MONITOR_RECLAIM_MINUTES.
 * The handler gets `attempt.sql === null` and writes through its own client, conditionally.
 */
export function rpcDatabase(client: RpcClient, { staleAfterMinutes }: { staleAfterMinutes?: number } = {}): TrackingDatabase {
  const staleAfter = `${reclaimMinutes(staleAfterMinutes)} minutes`;
  const call = async (fn: string, args: Record<string, unknown>) => {
    const { data, error } = await client.rpc(fn, args);
    if (error) throw Object.assign(new Error(error.message ?? String(error)), error, { name: "PostgrestError" });
    return data;
  };
  return {
    mode: "rpc",
    async begin(d: Delivery): Promise<Claim> {
      const rows = await call("webhook_event_begin", {
        p_stripe_event_id: d.eventId, p_event_type: d.eventType, p_payload: JSON.parse(d.payload),
        p_stripe_created_at: d.createdAt?.toISOString() ?? null, p_livemode: d.livemode,
        p_stale_after: staleAfter, p_source: d.source, p_raw_payload: d.rawPayload,
      });
      const row = (Array.isArray(rows) ? rows[0] : rows) as { decision: Decision; attempt: number };
      return {
        decision: row.decision,
        attempt: row.attempt,
        async run(work) {
          const args = await work(null);
          return Boolean(await call("webhook_event_complete", {
            p_stripe_event_id: d.eventId, p_outcome: args.outcome, p_registration_id: args.registrationId,
            p_attempt: row.attempt,
          }));
        },
        async fail(f) {
          try {
            return Boolean(await call("webhook_event_fail", {
              p_stripe_event_id: d.eventId, p_error_message: f.message, p_error_details: f.details,
              p_error_category: f.category, p_attempt: row.attempt, p_retryable: f.retryable,
            }));
          } catch (err) {
            throw new FailureNotRecorded(`the failure of ${d.eventId} could not be recorded`, { cause: err });
          }
        },
        async close() {},
      };
    },
  };
}

// --- the webhook -------------------------------------------------------------------------

export interface MonitorOptions {
  /** One or more signing secrets, comma-separated (STRIPE_WEBHOOK_SECRET). */
  secrets: string | string[] | undefined;
  database: TrackingDatabase;
  handle: Handler;
  /** Logs one line per failure; console by default. */
  log?: (line: string) => void;
}

const SOURCE_HEADER = "webhook-monitor-source";
const EVENT_ID = /"id"\s*:\s*"(evt_[A-Za-z0-9_]{1,200})"/;
const EVENT_TYPE = /"type"\s*:\s*"([a-z0-9_.]{1,200})"/;
const MESSAGE_CHARS = 1000;
const TRACEBACK_CHARS = 4000;
const cryptoProvider = Stripe.createSubtleCryptoProvider();

type Answer = [number, Record<string, unknown>];

function reply([status, body]: Answer): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function errorId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/** "Name: message" of an error, at most 1,000 characters (the row's error_message). */
export function errorMessage(err: unknown): string {
  const name = nameOf(err);
  const text = err instanceof Error ? err.message.trim() : String(err);
  return (text ? `${name}: ${text}` : name).slice(0, MESSAGE_CHARS);
}

function hostname(): string | null {
  try {
    return Deno.hostname();
  } catch {
    return null;
  }
}

function failure(err: unknown, verdict: Classification, attempt: number, eventType: string,
  context: Record<string, unknown>): Failure {
  const stack = err instanceof Error && err.stack ? err.stack : String(err);
  return {
    message: errorMessage(err),
    category: verdict.category,
    retryable: verdict.retryable,
    details: {
      exception_type: nameOf(err),
      message: (err instanceof Error ? err.message : String(err)).slice(0, MESSAGE_CHARS),
      traceback: stack.length > TRACEBACK_CHARS ? "…" + stack.slice(-TRACEBACK_CHARS) : stack,
      context, attempt, event_type: eventType, host: hostname(), classified_as: verdict.reason,
    },
  };
}

/** True when the JSON text nests arrays/objects deeper than `limit` (strings ignored). */
export function jsonDepthExceeds(text: string, limit: number = RULES.maxJsonDepth): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "[" || c === "{") {
      if (++depth > limit) return true;
    } else if (c === "]" || c === "}") depth--;
  }
  return false;
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function splitSecrets(secrets: string | string[] | undefined): string[] {
  const list = Array.isArray(secrets) ? secrets : (secrets ?? "").split(",");
  return list.map((s) => s.trim()).filter(Boolean);
}

/** Why the signature is not good, or null when one of the secrets signed `body` within the
 * tolerance. Stripe's library refuses old signatures; this refuses future-dated ones too. */
async function signatureProblem(body: Uint8Array, header: string | null, secrets: string[]): Promise<string | null> {
  const stamps = (header ?? "").split(",").map((p) => p.trim()).filter((p) => p.startsWith("t="));
  if (!header || stamps.length !== 1 || !/^t=\d+$/.test(stamps[0])) {
    return "the Stripe-Signature header is missing or malformed";
  }
  const tolerance = RULES.signatureToleranceS;
  if (Number(stamps[0].slice(2)) - Date.now() / 1000 > tolerance) {
    return `the signature's timestamp is outside the tolerance (${tolerance} s either side of now)`;
  }
  let problem = "no secret is configured";
  for (const secret of secrets) {
    try {
      await Stripe.webhooks.constructEventAsync(body, header, secret, tolerance, cryptoProvider);
      return null;
    } catch (err) {
      if (!(err instanceof Stripe.errors.StripeSignatureVerificationError)) return null; // signed; not JSON
      problem = /tolerance/i.test(err.message)
        ? `the signature's timestamp is outside the tolerance (${tolerance} s either side of now)`
        : "no signature matches the body for any configured secret";
    }
  }
  return problem;
}

/**
 * The Edge Function's request handler: `Deno.serve(monitorStripeWebhook({...}))`.
 * Answers POST on any path; other methods get 405.
 */
export function monitorStripeWebhook(options: MonitorOptions): (request: Request) => Promise<Response> {
  const secrets = splitSecrets(options.secrets);
  if (secrets.length === 0) {
    throw new Error("STRIPE_WEBHOOK_SECRET is not set: deliveries cannot be verified (whsec_..., comma-separated while rotating)");
  }
  const db = options.database;
  const log = options.log ?? ((line: string) => console.warn(line));

  const unavailable = (eventId: string, err: unknown): Answer => {
    const id = errorId();
    log(`event ${eventId} not recorded, database unavailable [error_id=${id}]: ${errorMessage(err)}`);
    return [503, { status: "unavailable", event_id: eventId, error_id: id,
      detail: "the database is unavailable; nothing was recorded" }];
  };

  const failed = (eventId: string, eventType: string, attempt: number, err: unknown): Answer => {
    const verdict = classify(err);
    const id = errorId();
    log(`event ${eventId} (${eventType}) failed on attempt ${attempt} [error_id=${id}, ${verdict.category}, ` +
      `${verdict.reason}]: ${errorMessage(err)}`);
    const answer: Record<string, unknown> = {
      status: "failed", event_id: eventId, attempt, error_category: verdict.category,
      recovery_action: recoveryAction(verdict), retry: isTransient(verdict), error_id: id,
    };
    if (err instanceof PayloadError) answer.error = err.message.slice(0, 500);
    return [isTransient(verdict) ? 500 : 200, answer];
  };

  const recordUnprocessable = async (text: string, reason: string, source: Source,
    event?: Record<string, unknown>): Promise<Answer> => {
    const digest = await sha256(text);
    let eventId = typeof event?.id === "string" && event.id.trim() ? event.id : undefined;
    let eventType = typeof event?.type === "string" && event.type.trim() ? event.type : undefined;
    eventId ??= EVENT_ID.exec(text.slice(0, 100_000))?.[1] ?? `unparsed_${digest.slice(0, 32)}`;
    eventType ??= EVENT_TYPE.exec(text.slice(0, 100_000))?.[1] ?? "unknown";
    const placeholder = { id: eventId, type: eventType,
      unprocessable: { reason: reason.slice(0, 500), bytes: text.length, sha256: digest } };
    const error = new PayloadError(reason);
    error.name = "UnprocessablePayload";
    let claim: Claim;
    try {
      claim = await db.begin({ eventId, eventType, payload: JSON.stringify(placeholder),
        rawPayload: text.replaceAll("\u0000", "\ufffd"), createdAt: null, livemode: false, source });
    } catch (err) {
      return unavailable(eventId, err);
    }
    try {
      if (claim.decision === "skip_duplicate") return [200, { status: "duplicate", event_id: eventId }];
      if (claim.decision === "retry_later") return [409, { status: "in_progress", event_id: eventId }];
      await claim.fail(failure(error, classify(error), claim.attempt, eventType, { source }));
    } catch (err) {
      return unavailable(eventId, err);
    } finally {
      await claim.close().catch(() => {});
    }
    return failed(eventId, eventType, claim.attempt, error);
  };

  const deliver = async (body: Uint8Array, signature: string | null, sourceHeader: string | null): Promise<Answer> => {
    const problem = await signatureProblem(body, signature, secrets);
    if (problem) {
      log(`rejected a delivery: ${problem}`);
      return [400, { status: "rejected", reason: "bad_signature", detail: problem }];
    }
    const source: Source = (RULES.attemptSources as readonly string[]).includes(sourceHeader ?? "")
      ? sourceHeader as Source
      : "delivery";
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(body);
    } catch {
      return recordUnprocessable(new TextDecoder().decode(body), "the body is not UTF-8 text", source);
    }
    if (jsonDepthExceeds(text)) {
      return recordUnprocessable(text, `the JSON nests deeper than ${RULES.maxJsonDepth} levels`, source);
    }
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(text);
    } catch (err) {
      return recordUnprocessable(text, `not JSON: ${String((err as Error).message).slice(0, 200)}`, source);
    }
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      const kind = Array.isArray(event) ? "list" : event === null ? "NoneType" : typeof event;
      return recordUnprocessable(text, `a Stripe event is a JSON object, not ${kind}`, source);
    }
    const eventId = event.id, eventType = event.type;
    if (typeof eventId !== "string" || !eventId.trim()) {
      return recordUnprocessable(text, "the event has no 'id'", source, event);
    }
    if (typeof eventType !== "string" || !eventType.trim()) {
      return recordUnprocessable(text, `event ${eventId} has no 'type'`, source, event);
    }
    const created = typeof event.created === "number" ? new Date(event.created * 1000) : null;
    let claim: Claim;
    try {
      claim = await db.begin({ eventId, eventType, payload: text, rawPayload: null,
        createdAt: created && !isNaN(created.getTime()) ? created : null, livemode: event.livemode === true, source });
    } catch (err) {
      const verdict = classify(err);
      if (verdict.category === "validation") { // \u0000, too deep or too large for jsonb
        return recordUnprocessable(text, `PostgreSQL cannot store the event as jsonb (${verdict.reason})`, source, event);
      }
      return unavailable(eventId, err);
    }
    if (claim.decision === "skip_duplicate") return [200, { status: "duplicate", event_id: eventId }];
    if (claim.decision === "retry_later") {
      return [409, { status: "in_progress", event_id: eventId,
        detail: "another delivery of this event is being processed" }];
    }
    const context: Record<string, unknown> = { receiver: "edge-function", source };
    let outcome = "processed";
    try {
      const completed = await claim.run(async (sql) => {
        const result = await options.handle(event as unknown as Stripe.Event,
          { eventId, eventType, attempt: claim.attempt, source, sql, context });
        const args = typeof result === "string"
          ? { outcome: result, registrationId: null }
          : { outcome: result?.outcome ?? "processed", registrationId: result?.registrationId ?? null };
        outcome = args.outcome;
        return args;
      });
      if (!completed) {
        return [409, { status: "in_progress", event_id: eventId, detail: "another delivery took this event over" }];
      }
    } catch (err) {
      try {
        await claim.fail(failure(err, classify(err), claim.attempt, eventType, context));
      } catch (recordErr) {
        log(`could not record the failure of event ${eventId} (${errorMessage(err)}); it stays 'processing' ` +
          `until the next delivery takes it over: ${errorMessage(recordErr)}`);
        return unavailable(eventId, recordErr);
      }
      return failed(eventId, eventType, claim.attempt, err);
    } finally {
      await claim.close().catch((err) => log(`could not release the lock of event ${eventId}: ${errorMessage(err)}`));
    }
    return [200, { status: outcome === "ignored" ? "ignored" : "processed", event_id: eventId,
      attempt: claim.attempt, outcome }];
  };

  return async (request: Request): Promise<Response> => {
    if (request.method !== "POST") {
      return reply([405, { status: "rejected", reason: "method_not_allowed", detail: "POST a Stripe event" }]);
    }
    const declared = Number(request.headers.get("content-length") ?? "0");
    const tooLarge: Answer = [413, { status: "rejected", reason: "too_large",
      detail: `the body exceeds ${RULES.maxBodyBytes} bytes` }];
    if (declared > RULES.maxBodyBytes) return reply(tooLarge);
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > RULES.maxBodyBytes) return reply(tooLarge);
    try {
      return reply(await deliver(body, request.headers.get("stripe-signature"), request.headers.get(SOURCE_HEADER)));
    } catch (err) { // a bug: the log has the error, the caller an id to quote
      const id = errorId();
      log(`delivery failed unexpectedly [error_id=${id}]: ${err instanceof Error ? err.stack : String(err)}`);
      return reply([500, { status: "error", error_id: id }]);
    }
  };
}
