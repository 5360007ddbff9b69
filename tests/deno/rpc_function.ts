// A function on the rpc mode: the monitor reaching the database through supabase-js
// `.rpc()` (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY), as an app without a direct connection
// would. tests/integrations/test_edge_function_rpc.py serves it against a PostgREST
// stand-in. Its handler ignores every event but two types, which fail as an app's handler
// would: `charge.failed` with a PayloadError (validation), `charge.refunded` with a
// PostgREST serialization failure.
import { createClient } from "npm:@supabase/supabase-js@2.119.2";
import { monitorStripeWebhook, PayloadError, rpcDatabase } from "../../integrations/supabase/functions/_shared/webhook_monitor.ts";

const supabase = createClient(Deno.env.get("SUPABASE_URL")!, Deno.env.get("SUPABASE_SERVICE_ROLE_KEY")!, {
  auth: { persistSession: false, autoRefreshToken: false },
});

Deno.serve(
  { hostname: "127.0.0.1", port: Number(Deno.env.get("PORT") ?? "0") },
  monitorStripeWebhook({
    secrets: Deno.env.get("STRIPE_WEBHOOK_SECRET"),
    database: rpcDatabase(supabase),
    handle: (event) => {
      if (event.type === "charge.failed") throw new PayloadError(`event ${event.id} cannot be processed`);
      if (event.type === "charge.refunded") {
        throw { code: "40001", details: null, hint: null, message: "could not serialize access" };
      }
      return Promise.resolve("ignored");
    },
  }),
);
