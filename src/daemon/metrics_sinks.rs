//! The daemon's metrics behind the narrow sinks that lower layers hand
//! their figures to: [`crate::sink::EventMetrics`] (every journaled event)
//! and [`crate::lease::LeaseMetrics`] (the serving lease's gauges).

use super::Metrics;
use crate::engine::{Event, Severity};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct EventLabels {
    event: String,
    severity: String,
}

/// `habeat_events_total{event,severity}`, registered in `registry`.
pub(super) fn register_events(registry: &mut Registry) -> Family<EventLabels, Counter> {
    let events = Family::<EventLabels, Counter>::default();
    registry.register(
        "events",
        "Events journaled (state_dir/events.jsonl, each also handed to the hooks.on_event \
         hooks), by event (its `event` field) and severity",
        events.clone(),
    );
    events
}

impl crate::sink::EventMetrics for Metrics {
    fn event(&self, event: &Event) {
        let severity = match event.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        self.0
            .events
            .get_or_create(&EventLabels {
                event: event.kind.name().into(),
                severity: severity.into(),
            })
            .inc();
    }
}

impl crate::lease::LeaseMetrics for Metrics {
    fn set_lease(&self, held: bool, fenced: i64, fence_failed: bool) {
        Metrics::set_lease(self, held, fenced, fence_failed);
    }
}
