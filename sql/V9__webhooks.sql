-- Webhook deliveries go through the outbox like emails (CONTRACT.md,
-- "Security events and webhooks"): written in the transaction of the event.
ALTER TABLE outbox DROP CONSTRAINT outbox_queue_known;
ALTER TABLE outbox ADD CONSTRAINT outbox_queue_known
    CHECK (queue IN ('email.password_reset', 'email.verification', 'email.security_notice',
                     'webhooks.delivery'));
