//! Each fence agent's own description of its parameters (`AGENT -o
//! metadata`, the XML Pacemaker reads) held against `fencing.<component>`:
//! a required parameter missing, an option the agent does not know (`ipaddr`
//! written for `ip`), a plug the agent needs but the file does not give.
//! Asked only where the host is looked at (`read/host.rs`): the agent runs.

use super::super::problem::HostCheck;
use super::super::yaml::Pos;
use super::super::{Config, FenceTarget};
use super::Walker;
use std::collections::{BTreeMap, BTreeSet};

/// One parameter of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Param {
    pub(super) name: String,
    pub(super) required: bool,
    pub(super) deprecated: bool,
    /// The older name this one replaces (`ip` obsoletes `ipaddr`).
    pub(super) obsoletes: Option<String>,
    pub(super) shortdesc: String,
}

/// What an agent's metadata says.
#[derive(Debug, Clone, Default)]
pub(super) struct AgentMeta {
    pub(super) params: Vec<Param>,
}

/// Parameters habeat writes itself, or that select the node (the plug).
const WRITTEN_BY_HABEAT: &[&str] = &["action", "plug", "port", "nodename"];

impl AgentMeta {
    pub(super) fn parse(xml: &str) -> Result<AgentMeta, String> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
        let root = doc.root_element();
        if root.tag_name().name() != "resource-agent" {
            return Err(format!(
                "the document is `<{}>`, not `<resource-agent>`",
                root.tag_name().name()
            ));
        }
        let mut params = Vec::new();
        for p in root.descendants().filter(|n| n.has_tag_name("parameter")) {
            let Some(name) = p.attribute("name") else {
                continue;
            };
            let shortdesc = p
                .children()
                .find(|c| c.has_tag_name("shortdesc"))
                .and_then(|c| c.text())
                .unwrap_or("")
                .trim()
                .to_owned();
            params.push(Param {
                name: name.to_owned(),
                required: p.attribute("required") == Some("1"),
                deprecated: p.attribute("deprecated") == Some("1"),
                obsoletes: p.attribute("obsoletes").map(str::to_owned),
                shortdesc,
            });
        }
        if params.is_empty() {
            return Err("it lists no parameters".into());
        }
        Ok(AgentMeta { params })
    }

    fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// `name` and the names it replaces or is replaced by.
    fn aliases(&self, name: &str) -> BTreeSet<String> {
        let mut set = BTreeSet::from([name.to_owned()]);
        for p in &self.params {
            if p.name == name
                && let Some(o) = &p.obsoletes
            {
                set.insert(o.clone());
            }
            if p.obsoletes.as_deref() == Some(name) {
                set.insert(p.name.clone());
            }
        }
        set
    }

    /// Whether the agent takes a plug at all, and whether it must have one.
    pub(super) fn plug(&self) -> Option<bool> {
        let p: Vec<&Param> = ["plug", "port"]
            .iter()
            .filter_map(|n| self.get(n))
            .collect();
        if p.is_empty() {
            None
        } else {
            Some(p.iter().any(|p| p.required))
        }
    }

    /// Required parameters (one name each: the current one of its aliases)
    /// that none of `given` names.
    pub(super) fn missing(&self, given: &BTreeSet<&str>) -> Vec<&Param> {
        let mut out: Vec<&Param> = Vec::new();
        let mut seen = BTreeSet::new();
        for p in self.params.iter().filter(|p| p.required) {
            if WRITTEN_BY_HABEAT.contains(&p.name.as_str()) {
                continue;
            }
            let names = self.aliases(&p.name);
            if names.iter().any(|n| given.contains(n.as_str())) || !seen.insert(names.clone()) {
                continue;
            }
            // Name the current spelling, not the deprecated one.
            let shown = names
                .iter()
                .filter_map(|n| self.get(n))
                .find(|q| !q.deprecated)
                .unwrap_or(p);
            out.push(shown);
        }
        out
    }
}

impl Walker<'_> {
    pub(super) fn fence_metadata_checks(&mut self, cfg: &Config) {
        let Some(fetch) = self.env.fence_metadata else {
            return;
        };
        for (name, target) in [
            ("appserver", &cfg.fencing.appserver),
            ("proxy", &cfg.fencing.proxy),
            ("consul", &cfg.fencing.consul),
        ] {
            let Some(t) = target else { continue };
            let at = format!("fencing.{name}");
            let pos = self.marks.given(&at).unwrap_or(Pos::START);
            let agent = t.agent.display().to_string();
            let meta = match fetch(&t.agent).and_then(|xml| AgentMeta::parse(&xml)) {
                Ok(m) => m,
                Err(e) => {
                    let pos = self.marks.given(&format!("{at}.agent")).unwrap_or(pos);
                    self.meta_problem(
                        pos,
                        format!(
                            "{at}.agent: `{agent} -o metadata` did not describe the agent \
                             ({e}); is this a ClusterLabs fence agent? run that command to see"
                        ),
                    );
                    continue;
                }
            };
            self.hold_options(&at, pos, &agent, t, &meta);
        }
    }

    fn hold_options(&mut self, at: &str, pos: Pos, agent: &str, t: &FenceTarget, meta: &AgentMeta) {
        let known: Vec<&str> = meta.params.iter().map(|p| p.name.as_str()).collect();
        for opt in t.options.keys() {
            if meta.get(opt).is_some() {
                continue;
            }
            let opt_pos = self
                .marks
                .given(&format!("{at}.options.{opt}"))
                .unwrap_or(pos);
            let hint = match super::super::suggest::nearest(opt, &known) {
                Some(near) => {
                    let desc = meta.get(near).map_or("", |p| p.shortdesc.as_str());
                    format!("; did you mean `{near}` ({desc})?")
                }
                None => String::new(),
            };
            self.meta_problem(
                opt_pos,
                format!(
                    "{at}.options.{opt}: {agent} has no parameter `{opt}` (its metadata, \
                     `{agent} -o metadata`, lists them){hint}"
                ),
            );
        }
        let given: BTreeSet<&str> = t.options.keys().map(String::as_str).collect();
        let missing: BTreeMap<String, String> = meta
            .missing(&given)
            .into_iter()
            .map(|p| (p.name.clone(), p.shortdesc.clone()))
            .collect();
        for (p, desc) in missing {
            let opts_pos = self.marks.given(&format!("{at}.options")).unwrap_or(pos);
            self.meta_problem(
                opts_pos,
                format!(
                    "{at}.options: {agent} requires `{p}` ({desc}); add `{p}: ...` under \
                     {at}.options"
                ),
            );
        }
        if t.plugs.is_empty() && meta.plug() == Some(true) {
            let desc = meta.get("plug").map_or("", |p| p.shortdesc.as_str());
            self.meta_problem(
                pos,
                format!(
                    "{at}: {agent} requires a plug ({desc}); write the node's plug as \
                     plugs: [name]"
                ),
            );
        }
    }

    fn meta_problem(&mut self, pos: Pos, message: String) {
        if self.env.host == HostCheck::Refuse {
            self.error(pos, message);
        } else {
            self.warn(pos, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AgentMeta;
    use std::collections::BTreeSet;

    const XML: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_x" shortdesc="x">
<parameters>
  <parameter name="action" required="1"><shortdesc lang="en">Fencing action</shortdesc></parameter>
  <parameter name="ip" required="1" obsoletes="ipaddr"><shortdesc lang="en">IP address</shortdesc></parameter>
  <parameter name="ipaddr" required="1" deprecated="1"><shortdesc lang="en">IP address</shortdesc></parameter>
  <parameter name="login" required="1" deprecated="1"><shortdesc lang="en">Login name</shortdesc></parameter>
  <parameter name="username" required="1" obsoletes="login"><shortdesc lang="en">Login name</shortdesc></parameter>
  <parameter name="plug" required="0" obsoletes="port"><shortdesc lang="en">Plug</shortdesc></parameter>
</parameters>
</resource-agent>"#;

    #[test]
    fn aliases_satisfy_a_required_parameter_and_the_current_name_is_shown() {
        let m = AgentMeta::parse(XML).expect("parses");
        let none = BTreeSet::new();
        let names: Vec<&str> = m.missing(&none).iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ip", "username"]);
        let old = BTreeSet::from(["ipaddr", "login"]);
        assert!(m.missing(&old).is_empty());
        assert_eq!(m.plug(), Some(false));
        assert!(AgentMeta::parse("<x/>").is_err());
        assert!(AgentMeta::parse("not xml").is_err());
    }
}
