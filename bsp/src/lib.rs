//! Board support: board detection, LED backends, hardware watchdog.
