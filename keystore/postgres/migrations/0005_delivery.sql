-- Schema 5. Delivery of a rotated key's secret (RotateOptions.AwaitDelivery),
-- as in keystore/sqlite's schema 7: a successor made by such a rotation is
-- 'pending' until ConfirmDelivery makes it 'delivered'; other keys have
-- none (NULL). While pending: until when no other rotation may replace it,
-- and the grace (seconds) the old key gets once the delivery is confirmed.
ALTER TABLE keys ADD COLUMN delivery text;
ALTER TABLE keys ADD COLUMN delivery_due timestamptz;
ALTER TABLE keys ADD COLUMN delivery_grace bigint;
