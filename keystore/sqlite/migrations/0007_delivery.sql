-- Schema 7. Delivery of a rotated key's secret (RotateOptions.AwaitDelivery):
-- a successor made by such a rotation is 'pending' until ConfirmDelivery
-- makes it 'delivered'; keys made otherwise have none (NULL).
ALTER TABLE keys ADD COLUMN delivery TEXT;
-- While pending: until when (unix seconds) no other rotation may replace
-- the successor, and the grace (seconds) that the old key gets once the
-- delivery is confirmed.
ALTER TABLE keys ADD COLUMN delivery_due INTEGER;
ALTER TABLE keys ADD COLUMN delivery_grace INTEGER;
