//! The readers of a fence target's keys (`fencing.appserver`, `proxy`,
//! `consul`; the target itself is opened as a section by `walk.rs`): its
//! agent must be an executable, its options scalars (never `action`,
//! which habeat sets), and its plug given once. The count of `consul.plugs` against the
//! peer's Consul servers is a cross-section check ([`Walker::fence_cross`]).

use super::super::yaml::{Node, Value};
use super::super::{Config, FenceAction};
use super::{Section, Walker};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Option names habeat writes itself on the agent's stdin.
const RESERVED: &[&str] = &["action", "option", "nodename"];

impl Walker<'_> {
    pub(in crate::config) fn fence_agent(&mut self, s: &Section, key: &str) -> Option<PathBuf> {
        let path = self.abs_path(s, key)?;
        let pos = s.pos_of(key);
        let what = s.child(key);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Some(path),
            Ok(m) if m.is_file() => {
                self.error(
                    pos,
                    format!(
                        "{what}: {} is not executable; install the agent (Debian package \
                         fence-agents) or fix its mode",
                        path.display()
                    ),
                );
                None
            }
            Ok(_) => {
                self.error(
                    pos,
                    format!(
                        "{what}: {} is not a file; name the agent program",
                        path.display()
                    ),
                );
                None
            }
            Err(e) => {
                self.error(
                    pos,
                    format!(
                        "{what}: cannot use {}: {e}; install the agent (`apt install \
                         fence-agents`) or correct the path",
                        path.display()
                    ),
                );
                None
            }
        }
    }

    /// `action`: `off` or `status`. An unquoted `off` is YAML 1.1's
    /// `false`, and is read as `off`.
    pub(in crate::config) fn fence_action(
        &mut self,
        s: &Section,
        key: &str,
        default: FenceAction,
    ) -> FenceAction {
        if let Some(Node {
            value: Value::Bool(false),
            ..
        }) = s.given(key)
        {
            return FenceAction::Off;
        }
        if let Some(
            node @ Node {
                value: Value::Bool(true),
                ..
            },
        ) = s.given(key)
        {
            self.error(
                node.pos,
                format!(
                    "{}: `on` is not a fencing action; write \"off\" (power off, then \
                     confirm) or status (only confirm)",
                    s.child(key)
                ),
            );
            return default;
        }
        self.choice(s, key, default, FenceAction::CHOICES)
    }

    /// `options`: `name: scalar` pairs, booleans as the agents read them
    /// (`1`/`0`). Values are never quoted in messages (a password).
    pub(in crate::config) fn fence_options(
        &mut self,
        s: &Section,
        key: &str,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(node) = s.given(key) else {
            return out;
        };
        let path = s.child(key);
        let Value::Map(entries) = &node.value else {
            self.type_error(node, &path, "a mapping of `option: value`");
            return out;
        };
        for (k, v) in entries {
            let name = k.name.trim().to_owned();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.error(
                    k.pos,
                    format!(
                        "{path}: `{}` is not an option name; use the agent's long option \
                         names (ip, username, password_script, ...)",
                        k.name
                    ),
                );
                continue;
            }
            if RESERVED.contains(&name.as_str()) {
                self.error(
                    k.pos,
                    format!(
                        "{path}.{name}: habeat writes `{name}=` itself; remove it (choose \
                         what is done with `action: off` or `action: status`)"
                    ),
                );
                continue;
            }
            let text = match &v.value {
                Value::Str(t) => t.clone(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
                _ => {
                    self.type_error(
                        v,
                        &format!("{path}.{name}"),
                        "a single value (text, number, true/false)",
                    );
                    continue;
                }
            };
            if text.contains(['\n', '\r', '\0']) {
                self.error(
                    v.pos,
                    format!(
                        "{path}.{name}: a value cannot hold a line break (options are \
                         written one per line on the agent's stdin)"
                    ),
                );
                continue;
            }
            if crate::model::fence_option_is_secret(&name) && text.len() >= 4 {
                self.secrets.push(text.clone());
            }
            self.marks.given.insert(format!("{path}.{name}"), k.pos);
            if out.insert(name.clone(), text).is_some() {
                self.error(k.pos, format!("{path}.{name} is given twice"));
            }
        }
        out
    }

    pub(in crate::config) fn fence_plugs(&mut self, s: &Section, key: &str) -> Vec<String> {
        let path = s.child(key);
        let mut out = Vec::new();
        for item in self.list(s, key, "plug names") {
            if let Some(p) = self.string_item(item, &path, "a plug name (the VM or system name)") {
                if p.contains(['\n', '\r', '\0']) {
                    self.error(item.pos, format!("{path}: a plug cannot hold a line break"));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    /// What spans sections: the plug count of each target against the
    /// peer datacenter's nodes.
    pub(in crate::config) fn fence_cross(&mut self, cfg: &Config) {
        let peer_name = cfg.local.dc_check.as_str();
        // No plug is allowed here: agents such as fence_ipmilan and
        // fence_redfish address the node itself. Whether this agent needs
        // one its metadata says (`read/fence_meta.rs`); more than one is
        // never right for one node.
        for (name, target) in [
            ("appserver", &cfg.fencing.appserver),
            ("proxy", &cfg.fencing.proxy),
        ] {
            let Some(t) = target else { continue };
            if t.plugs.len() > 1 {
                let pos = self
                    .marks
                    .given(&format!("fencing.{name}.plugs"))
                    .or(self.marks.given(&format!("fencing.{name}")))
                    .unwrap_or(super::super::yaml::Pos::START);
                self.error(
                    pos,
                    format!(
                        "fencing.{name} fences one node, but names {} plugs; write its \
                         plug once, as options.plug or plugs: [name] (or none when the agent \
                         addresses the node itself)",
                        t.plugs.len()
                    ),
                );
            }
        }
        if let Some(t) = &cfg.fencing.consul {
            let servers = cfg
                .dcs
                .get(peer_name)
                .map(|d| d.consul_vmnames.clone())
                .unwrap_or_default();
            if t.plugs.len() != servers.len() || servers.is_empty() {
                let pos = self
                    .marks
                    .given("fencing.consul.plugs")
                    .or(self.marks.given("fencing.consul"))
                    .unwrap_or(super::super::yaml::Pos::START);
                self.error(
                    pos,
                    format!(
                        "fencing.consul.plugs names {} plugs, but {peer_name}.consul_vmnames \
                         lists {} Consul servers ({}); give one plug per server, in the same \
                         order",
                        t.plugs.len(),
                        servers.len(),
                        if servers.is_empty() {
                            "none".to_owned()
                        } else {
                            servers.join(", ")
                        }
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::{FenceAction, LoadEnv, load_str_with};
    use std::path::Path;

    const BASE: &str = "local:\n  whoami: secondary\n  dc_check: primary\n  roles: [appserver, consulserver]\nprimary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n  consul_ips: [192.0.2.31, 192.0.2.33]\n  consul_vmnames: [svc1.example.com, svc3.example.com]\nsecondary:\n  consul_vmnames: [svc2.example.com]\n";

    fn problems(fencing: &str) -> Vec<String> {
        let text = format!("{BASE}{fencing}");
        match load_str_with(&text, Path::new("h.yml"), &LoadEnv::default()) {
            Ok(_) => Vec::new(),
            Err(e) => e.lines(),
        }
    }

    #[test]
    fn a_full_fencing_section_is_read_with_booleans_as_the_agents_read_them() {
        let text = format!(
            "{BASE}fencing:\n  timeout: 20s\n  appserver:\n    agent: /usr/sbin/fence_dummy\n    action: off\n    options: {{ ip: vc.example.com, password: s3cr3t-pw, ssl_insecure: true, plug: mbox1 }}\n  consul:\n    agent: /usr/sbin/fence_dummy\n    plugs: [svc1, svc3]\n"
        );
        let cfg = match load_str_with(&text, Path::new("h.yml"), &LoadEnv::default()) {
            Ok(c) => c,
            Err(e) => panic!("{:#?}", e.lines()),
        };
        let a = cfg.fencing.appserver.as_ref().expect("appserver is fenced");
        assert_eq!(a.action, FenceAction::Off, "unquoted off is YAML 1.1 false");
        assert_eq!(a.plugs, ["mbox1"]);
        assert_eq!(a.options.get("ssl_insecure").map(String::as_str), Some("1"));
        assert!(!a.options.contains_key("plug"), "the plug travels as plug=");
        let c = cfg.fencing.consul.as_ref().expect("consul is fenced");
        assert_eq!(c.action, FenceAction::Status, "status is the default");
        assert_eq!(c.plugs, ["svc1", "svc3"]);
        assert_eq!(cfg.fencing.timeout, std::time::Duration::from_secs(20));
    }

    #[test]
    fn the_password_is_never_shown_by_config_check() {
        let text = format!(
            "{BASE}fencing:\n  appserver:\n    agent: /usr/sbin/fence_dummy\n    options: {{ passwd: s3cr3t-pw, password_script: /etc/habeat/pw, plug: mbox1 }}\n"
        );
        let cfg = match load_str_with(&text, Path::new("h.yml"), &LoadEnv::default()) {
            Ok(c) => c,
            Err(e) => panic!("{:#?}", e.lines()),
        };
        for shown in [
            cfg.render_text(),
            cfg.render_json(),
            format!("{cfg:?}"),
            serde_json::to_string(&cfg).unwrap_or_default(),
        ] {
            assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        }
        assert!(
            cfg.render_text()
                .contains("password_script: /etc/habeat/pw")
        );
        assert!(cfg.render_json().contains("\"passwd\": \"********\""));
        // A wrong type next to the password names no value.
        let lines = problems(
            "fencing:\n  appserver:\n    agent: /usr/sbin/fence_dummy\n    options: { password: s3cr3t-pw, plug: [a] }\n",
        );
        assert!(lines.iter().all(|l| !l.contains("s3cr3t-pw")), "{lines:#?}");
    }

    #[test]
    fn each_mistake_is_named_with_its_line() {
        let lines = problems(
            "fencing:\n  appserver:\n    agent: fence_dummy\n    options: { plug: mbox1 }\n",
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "h.yml:14:12: fencing.appserver.agent: `fence_dummy` is a relative path"
            )),
            "{lines:#?}"
        );
        let dir = tempfile::tempdir().expect("a scratch dir");
        let plain = dir.path().join("fence_plain");
        std::fs::write(&plain, "#!/bin/sh\n").expect("writable");
        let lines = problems(&format!(
            "fencing:\n  appserver:\n    agent: {}\n    options: {{ plug: mbox1 }}\n",
            plain.display()
        ));
        let want = format!(
            "h.yml:14:12: fencing.appserver.agent: {} is not executable",
            plain.display()
        );
        assert!(lines.iter().any(|l| l.starts_with(&want)), "{lines:#?}");
        let lines = problems(
            "fencing:\n  appserver:\n    agent: /usr/sbin/fence_dummy\n    options: { plug: mbox1 }\n    plugs: [mbox1]\n",
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("h.yml:16:12: fencing.appserver: the plug is given twice")),
            "{lines:#?}"
        );
        let lines =
            problems("fencing:\n  proxy:\n    agent: /usr/sbin/fence_dummy\n    plugs: [a, b]\n");
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("h.yml:15:12: fencing.proxy fences one node, but names 2 plugs")),
            "{lines:#?}"
        );
        let lines =
            problems("fencing:\n  consul:\n    agent: /usr/sbin/fence_dummy\n    plugs: [svc1]\n");
        assert!(
            lines.iter().any(|l| l.starts_with("h.yml:15:12: fencing.consul.plugs names 1 plugs, but primary.consul_vmnames lists 2 Consul servers (svc1.example.com, svc3.example.com)")),
            "{lines:#?}"
        );
        let lines = problems(
            "fencing:\n  appserver:\n    agent: /usr/sbin/fence_dummy\n    action: on\n    options: { action: reboot, plug: m }\n",
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "h.yml:15:13: fencing.appserver.action: `on` is not a fencing action"
            )),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "h.yml:16:16: fencing.appserver.options.action: habeat writes `action=` itself"
            )),
            "{lines:#?}"
        );
        let lines = problems("fencing:\n  appserver:\n    action: status\n    plugs: [m]\n");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("h.yml:14:5: fencing.appserver.agent is missing")),
            "{lines:#?}"
        );
        let lines =
            problems("fencing:\n  appserver:\n    agent: /usr/sbin/fence_dummy\n    plug: [m]\n");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("h.yml:15:5: fencing.appserver: unknown key `plug`")),
            "{lines:#?}"
        );
    }
}
