-- The time of the last reading evaluated, per metric of the device (a JSON object of
-- metric -> µs), written with the device's sequence. A rule whose condition neither holds
-- nor has an open alert keeps no evaluation row of its own up to date: its series' time
-- here is all that evaluating the next reading needs.
ALTER TABLE devices ADD COLUMN times text NOT NULL DEFAULT '{}';
