-- Landing zone of the video platform's MQTT alarms (connectors.mqtt_collector).
-- The collector inserts each alarm as it arrives and acknowledges it to the broker
-- only after the insert committed; the `alarms` stream of the video connector then
-- reads new rows by landing_id. One row per alarm and source: a QoS 1 redelivery
-- of the same alarmId is a no-op (ON CONFLICT DO NOTHING).
-- Keyed by source too: two platform instances (two cities' networks, or a test
-- and a production source) may well use the same alarm ids.

CREATE TABLE raw.video_alarm (
    source_system text NOT NULL,
    alarm_id      text NOT NULL,
    device_id     text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    payload       jsonb NOT NULL,
    landing_id    bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (source_system, alarm_id)
);
CREATE UNIQUE INDEX video_alarm_landing ON raw.video_alarm (source_system, landing_id);
COMMENT ON TABLE raw.video_alarm IS 'one row per MQTT alarm received, per source: the payload as sent';
COMMENT ON COLUMN raw.video_alarm.landing_id IS 'arrival order; the cursor of the alarms stream';
COMMENT ON COLUMN raw.video_alarm.payload IS 'the alarm JSON as received; {"_unparseable": text} if it was not JSON';
