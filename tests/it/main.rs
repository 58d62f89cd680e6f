//! The integration tests, in one test binary (one link instead of one per
//! file): each module is one area, driving the real `habeat` binary, real
//! sockets, network namespaces, slapd and the stand-ins of `support`.
//! Run one area with `cargo test --test it <module>::`. The pure tests of
//! the engine, which need neither root nor namespaces, are in
//! `tests/engine` (`cargo test --test engine`).

#[path = "../support/bed.rs"]
mod bed;
#[path = "../support/bin.rs"]
mod bin;
#[path = "../support/fake_carbonio.rs"]
mod fake_carbonio;
#[path = "../support/mod.rs"]
mod support;

mod act_carbonio;
mod act_hooks;
mod act_raft;
mod cli_carbonio_output;
mod cli_check;
mod cli_clock;
mod cli_promote;
mod config_cli;
mod config_fuzz;
mod config_load;
mod consul_client;
mod consul_gate;
mod consul_hostile;
mod consul_sessions;
mod contrib_prometheus;
mod crash_promotion;
mod daemon_binary;
mod daemon_logging;
mod daemon_metrics;
mod daemon_notify;
mod daemon_reload_log;
mod daemon_run;
mod daemon_signals;
mod e2e_failover;
mod e2e_partition;
mod e2e_testbed;
mod event_sink;
mod exec_gate;
mod fake_carbonio_model;
mod fence_agents;
mod fence_binary;
mod history;
mod lease_fence;
mod lease_gate_off;
mod lease_primary;
mod lease_reload;
mod lease_takeover;
mod probe_ldap;
mod probe_netns;
mod probe_witnesses;
mod reload_fencing;
mod replica_protection;
mod replica_survey;
mod reprotect_binary;
mod session_abandon;
mod state_dir;
mod state_lock;
mod state_store;
mod status_crisis;
mod status_view;
mod switchover;
mod systemd_sandbox;
mod systemd_units;
mod test_guards;
