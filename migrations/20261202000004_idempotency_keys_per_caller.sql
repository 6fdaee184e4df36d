-- Idempotency keys are scoped to the caller that sent them: the token's subject, or '' where every caller is trusted
-- (AUTH_MODE=none, as before callers were known). The same key from two callers is two keys, so one customer's
-- retry never replays another's response.
alter table idempotency_key add column caller text not null default '';
alter table idempotency_key drop constraint idempotency_key_pkey;
alter table idempotency_key add primary key (caller, key);
