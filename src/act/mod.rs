//! The executor's edge: everything habeat does to the outside world
//! (processes, the carbonio CLI, hooks, Consul raft recovery).

pub mod process;
