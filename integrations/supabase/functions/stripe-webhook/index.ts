/**
 * The example Stripe webhook Edge Function: the pending-registration flow's handler, wrapped
 * by the monitor (../_shared/webhook_monitor.ts).
 *
 *   deno run -A integrations/supabase/functions/stripe-webhook/index.ts
 *
 * PORT (default 8000), SUPABASE_DB_URL (the direct database URL Supabase gives every function),
 * STRIPE_WEBHOOK_SECRET (comma-separated while rotating); MONITOR_RECLAIM_MINUTES optional.
 * Answers POST on any path. What the four Checkout Session events do to a registration is the
 * reference receiver's rule (tracking/registrations.py): the session's registration (by
 * session id, else by client_reference_id) is locked and changed only while still 'pending',
 * in the same transaction as the event's 'completed' mark.
 */
import type Stripe from "npm:stripe@23.2.0";
import type postgres from "npm:postgres@3.4.10";
import { directDatabase, monitorStripeWebhook, PayloadError } from "../_shared/webhook_monitor.ts";

const PAID_STATUSES = new Set(["paid", "no_payment_required"]);
const PAYMENT_STATUSES = new Set(["paid", "unpaid", "no_payment_required"]);
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

interface Registration {
  id: string;
  processing_status: string;
  stripe_checkout_session_id: string | null;
}

interface Session {
  id: string;
  clientReferenceId: string | null;
  paymentStatus: string | null;
  amountTotal: number | null;
  currency: string | null;
}

/** The checkout session of an event, or PayloadError naming what is wrong with it. */
function checkoutSession(event: Stripe.Event): Session {
  const data = (event as { data?: { object?: unknown } }).data;
  const object = data && typeof data === "object" ? data.object : undefined;
  if (!object || typeof object !== "object" || Array.isArray(object)) {
    throw new PayloadError(`event ${event.id}: data.object is missing or not an object`);
  }
  const s = object as Record<string, unknown>;
  const kind = s.object ?? "checkout.session";
  if (kind !== "checkout.session") throw new PayloadError(`event ${event.id}: data.object is a '${kind}', not a checkout.session`);
  if (typeof s.id !== "string" || !s.id.trim()) throw new PayloadError(`event ${event.id}: data.object.id (the session id) is missing`);
  const paymentStatus = s.payment_status ?? null;
  if (paymentStatus !== null && !PAYMENT_STATUSES.has(paymentStatus as string)) {
    throw new PayloadError(`event ${event.id}: unknown payment_status '${paymentStatus}'`);
  }
  const amount = s.amount_total ?? null;
  if (amount !== null && (typeof amount !== "number" || !Number.isInteger(amount) || amount < 0)) {
    throw new PayloadError(`event ${event.id}: amount_total ${JSON.stringify(amount)} is not a whole non-negative number of minor units`);
  }
  const currency = s.currency ?? null;
  if (currency !== null && typeof currency !== "string") throw new PayloadError(`event ${event.id}: currency is not a string`);
  return {
    id: s.id,
    clientReferenceId: typeof s.client_reference_id === "string" ? s.client_reference_id : null,
    paymentStatus: paymentStatus as string | null,
    amountTotal: amount as number | null,
    currency: currency ? (currency as string).toLowerCase() : null,
  };
}

async function findRegistration(sql: postgres.Sql, session: Session): Promise<Registration | undefined> {
  const [bySession] = await sql<Registration[]>`
    SELECT id::text AS id, processing_status, stripe_checkout_session_id
    FROM public.registrations WHERE stripe_checkout_session_id = ${session.id} FOR UPDATE`;
  if (bySession) return bySession;
  const reference = session.clientReferenceId?.trim();
  if (!reference || !UUID.test(reference)) return undefined;
  const [byId] = await sql<Registration[]>`
    SELECT id::text AS id, processing_status, stripe_checkout_session_id
    FROM public.registrations WHERE id = ${reference}::uuid FOR UPDATE`;
  return byId;
}

/** The app's handler: what a Checkout Session event does to its registration. */
async function applyEvent(event: Stripe.Event, sql: postgres.Sql) {
  const type = event.type as string;
  const handled = ["checkout.session.completed", "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed", "checkout.session.expired"];
  if (!handled.includes(type)) return "ignored";
  const session = checkoutSession(event);
  if (type === "checkout.session.completed" && session.paymentStatus === null) {
    throw new PayloadError(`event ${event.id}: data.object.payment_status is missing`);
  }
  const paid = type === "checkout.session.async_payment_succeeded" ||
    (type === "checkout.session.completed" && PAID_STATUSES.has(session.paymentStatus!));
  const registration = await findRegistration(sql, session);
  if (!registration) {
    if (paid) {
      throw new PayloadError(`paid checkout session ${session.id} matches no registration ` +
        `(client_reference_id ${JSON.stringify(session.clientReferenceId)})`);
    }
    return "no_registration";
  }
  const done = (changed: readonly unknown[], label: string) => ({
    outcome: changed.length ? label : `registration_already_${registration.processing_status}`,
    registrationId: registration.id,
  });
  if (paid) {
    // A paid session completes its pending registration even if the app had since started
    // another session for it; never a row another registration's session already records.
    return done(await sql`
      UPDATE public.registrations
      SET processing_status = 'completed', completed_at = now(),
          amount_total = coalesce(amount_total, ${session.amountTotal}::integer),
          currency = coalesce(currency, ${session.currency}::text),
          stripe_checkout_session_id = ${session.id}, updated_at = now()
      WHERE id = ${registration.id}::uuid AND processing_status = 'pending'
        AND NOT EXISTS (SELECT 1 FROM public.registrations other
                        WHERE other.stripe_checkout_session_id = ${session.id}
                          AND other.id <> ${registration.id}::uuid)
      RETURNING id`, "registration_completed");
  }
  if (![null, session.id].includes(registration.stripe_checkout_session_id)) {
    // An abandoned earlier session expiring or failing says nothing about the current one.
    return { outcome: "other_session_ignored", registrationId: registration.id };
  }
  if (type === "checkout.session.completed") { // a delayed payment method: stays pending
    return done(await sql`
      UPDATE public.registrations
      SET amount_total = coalesce(amount_total, ${session.amountTotal}::integer),
          currency = coalesce(currency, ${session.currency}::text),
          stripe_checkout_session_id = ${session.id}, updated_at = now()
      WHERE id = ${registration.id}::uuid AND processing_status = 'pending' RETURNING id`, "awaiting_payment");
  }
  if (type === "checkout.session.async_payment_failed") {
    return done(await sql`
      UPDATE public.registrations
      SET processing_status = 'failed',
          amount_total = coalesce(amount_total, ${session.amountTotal}::integer),
          currency = coalesce(currency, ${session.currency}::text),
          stripe_checkout_session_id = ${session.id}, updated_at = now()
      WHERE id = ${registration.id}::uuid AND processing_status = 'pending' RETURNING id`, "registration_failed");
  }
  return done(await sql`
    UPDATE public.registrations
    SET processing_status = 'expired', stripe_checkout_session_id = ${session.id}, updated_at = now()
    WHERE id = ${registration.id}::uuid AND processing_status = 'pending' RETURNING id`, "registration_expired");
}

// Top level, as Supabase runs a function's index.ts (no `import.meta.main` check).
const databaseUrl = Deno.env.get("SUPABASE_DB_URL");
if (!databaseUrl) {
  console.error("SUPABASE_DB_URL is not set: the function records every event in the project's database");
  Deno.exit(2);
}
let handler: (request: Request) => Promise<Response>;
try {
  handler = monitorStripeWebhook({
    secrets: Deno.env.get("STRIPE_WEBHOOK_SECRET"),
    database: directDatabase(databaseUrl),
    handle: (event, attempt) => applyEvent(event, attempt.sql!),
  });
} catch (err) {
  console.error((err as Error).message);
  Deno.exit(2);
}
Deno.serve({ port: Number(Deno.env.get("PORT") ?? "8000"), hostname: Deno.env.get("HOST") ?? "0.0.0.0" }, handler);
