//! The readers of the keys that have a kind of their own (`Kind::Custom`
//! in `keys.rs`): what they accept is particular to them, and so are
//! their messages.

use super::super::out::format_size;
use super::super::problem::io_problem;
use super::super::suggest;
use super::super::yaml::{Node, Pos, Value};
use super::super::{HookCommand, ProbeSpec, Quorum, Scheme, Secret, TokenSource};
use super::{Section, Walker};
use crate::model::Role;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const ROLE_NAMES: &[&str] = &["appserver", "proxyserver", "consulserver"];
const PROBE_KINDS: &[&str] = &["icmp", "tcp", "http", "ldap"];

impl Walker<'_> {
    // -- local ----------------------------------------------------------------

    /// `local.provider`: only `consul` is supported.
    pub(in crate::config) fn provider(&mut self, s: &Section, key: &str) {
        if let Some((p, pos)) = self.opt_string(s, key, "the text consul")
            && p != "consul"
        {
            self.error(
                pos,
                format!(
                    "local.provider: `{p}` is not supported; habeat asks Carbonio's \
                     service discover: write `provider: consul` (or remove the line); \
                     for another source of evidence use witnesses.command"
                ),
            );
        }
    }

    pub(in crate::config) fn roles(&mut self, s: &Section) -> Vec<Role> {
        let role = s.given("role");
        let roles = s.given("roles");
        if let (Some(_), Some(r)) = (role, roles) {
            self.error(
                r.pos,
                "local.role and local.roles are both set; keep `roles` (a list) and remove `role`",
            );
        }
        let mut out = Vec::new();
        if let Some(node) = roles {
            let items = self.list(s, "roles", "roles");
            if items.is_empty() && matches!(node.value, Value::Seq(_)) {
                self.error(
                    node.pos,
                    format!(
                        "local.roles is empty; list at least one of {}",
                        ROLE_NAMES.join(", ")
                    ),
                );
            }
            for item in items {
                if let Some(r) = self.role(item, "local.roles")
                    && !out.contains(&r)
                {
                    out.push(r);
                }
            }
        } else if let Some(node) = role {
            if let Some(r) = self.role(node, "local.role") {
                out.push(r);
            }
        } else {
            out.push(Role::Appserver);
        }
        out
    }

    pub(super) fn role(&mut self, node: &Node, path: &str) -> Option<Role> {
        let name = self.string_item(node, path, "a role name")?;
        match name.as_str() {
            "appserver" => Some(Role::Appserver),
            "proxyserver" => Some(Role::Proxyserver),
            "consulserver" => Some(Role::Consulserver),
            other => {
                let hint = suggest::hint(other, ROLE_NAMES);
                self.error(node.pos, format!("{path}: unknown role `{other}`; {hint}"));
                None
            }
        }
    }

    // -- datacenters ----------------------------------------------------------

    /// `deactivate`, or its old spelling `deativate` (not both).
    pub(in crate::config) fn deactivate(&mut self, t: &Section, key: &str) -> Vec<HookCommand> {
        const OLD: &str = "deativate";
        if t.given(key).is_some() && t.given(OLD).is_some() {
            self.error(
                t.pos_of(OLD),
                format!(
                    "{}: both `deactivate` and the old spelling `deativate` are set; keep `deactivate`",
                    t.path
                ),
            );
            Vec::new()
        } else if t.given(key).is_some() {
            self.commands(t, key)
        } else {
            self.commands(t, OLD)
        }
    }

    // -- consul ---------------------------------------------------------------

    /// `consul.ca_file`: must be a file; pointless (a warning) under http.
    pub(in crate::config) fn ca_file(
        &mut self,
        s: &Section,
        key: &str,
        scheme: Scheme,
    ) -> Option<PathBuf> {
        let ca = self.abs_path(s, key)?;
        let pos = s.pos_of(key);
        if !ca.is_file() {
            self.error(
                pos,
                format!(
                    "consul.ca_file: {} does not exist or is not a file; give the CA \
                     certificate that signed the Consul agent's certificate",
                    ca.display()
                ),
            );
        } else if scheme == Scheme::Http {
            self.warn(
                pos,
                "consul.ca_file is ignored with scheme: http; set scheme: https to use TLS",
            );
        }
        Some(ca)
    }

    /// The token, by precedence: `consul.token`, then `consul.token_file`,
    /// then `CONSUL_HTTP_TOKEN`. Its value never enters a message.
    pub(in crate::config) fn token(
        &mut self,
        s: &Section,
        token_file: Option<&Path>,
    ) -> (Option<Secret>, Option<TokenSource>) {
        let mut inline = None;
        if let Some(node) = s.given("token") {
            match &node.value {
                Value::Str(t) if t.trim().is_empty() => {}
                Value::Str(t) => {
                    let t = t.trim().to_owned();
                    self.secrets.push(t.clone());
                    if self.token_ok(&t, node.pos, "consul.token") {
                        inline = Some(Secret::new(t));
                    }
                }
                // A token that YAML read as a number or boolean: say so
                // without echoing it.
                _ => self.error(
                    node.pos,
                    format!(
                        "consul.token: expected text, found {}; put the token in quotes",
                        node.value.kind()
                    ),
                ),
            }
        }
        if let Some(path) = token_file {
            let pos = s.pos_of("token_file");
            if s.given("token").is_some() {
                self.error(
                    pos,
                    "consul.token and consul.token_file are both set; keep one (token_file \
                     keeps the secret out of habeat.yml)",
                );
                return (inline, Some(TokenSource::Config));
            }
            return match self.read_token_file(path, pos) {
                Some(t) => (Some(t), Some(TokenSource::File)),
                None => (None, None),
            };
        }
        if let Some(t) = inline {
            if self.file_mode.is_some_and(|m| m & 0o004 != 0) {
                let mode = self.file_mode.unwrap_or(0) & 0o777;
                self.warn(
                    self.marks.given("consul.token").unwrap_or(Pos::START),
                    format!(
                        "consul.token is in a file every local user can read (mode {mode:04o}); \
                         run `chmod 600 {}`, or move the token to a root-only consul.token_file",
                        self.source.display()
                    ),
                );
            }
            return (Some(t), Some(TokenSource::Config));
        }
        match &self.env.consul_http_token {
            Some(t) => (Some(t.clone()), Some(TokenSource::Environment)),
            None => (None, None),
        }
    }

    pub(super) fn token_ok(&mut self, t: &str, pos: Pos, path: &str) -> bool {
        if t.chars().any(|c| c.is_control() || c == ' ') {
            self.error(
                pos,
                format!("{path}: the token contains spaces or control characters; copy it again (a Consul token is one word, usually a UUID)"),
            );
            return false;
        }
        true
    }

    pub(super) fn read_token_file(&mut self, path: &Path, pos: Pos) -> Option<Secret> {
        let meta = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                self.error(
                    pos,
                    format!("consul.token_file: {} is not a regular file; give the file that holds the token", path.display()),
                );
                return None;
            }
            Err(e) => {
                self.error(
                    pos,
                    format!("consul.token_file: {} {}", path.display(), io_problem(&e)),
                );
                return None;
            }
        };
        let mut text = String::new();
        let read =
            std::fs::File::open(path).and_then(|f| f.take(64 * 1024).read_to_string(&mut text));
        if let Err(e) = read {
            let why = if e.kind() == std::io::ErrorKind::InvalidData {
                "is not text".to_owned()
            } else {
                io_problem(&e)
            };
            self.error(pos, format!("consul.token_file: {} {why}", path.display()));
            return None;
        }
        let t = text.trim().to_owned();
        if t.is_empty() {
            self.error(
                pos,
                format!(
                    "consul.token_file: {} is empty; put the Consul ACL token in it",
                    path.display()
                ),
            );
            return None;
        }
        self.secrets.push(t.clone());
        if !self.token_ok(&t, pos, "consul.token_file") {
            return None;
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o004 != 0 {
            self.warn(
                pos,
                format!(
                    "consul.token_file {} can be read by every local user (mode {:04o}); run `chmod 600` on it",
                    path.display(),
                    mode & 0o777
                ),
            );
        }
        Some(Secret::new(t))
    }

    // -- detection, witnesses, carbonio, metrics ------------------------------

    /// A whole number in `min..=max` that may be left out (`None`: the
    /// key is absent, or its value was refused with an error).
    pub(in crate::config) fn opt_count(
        &mut self,
        s: &Section,
        key: &str,
        min: u32,
        max: u32,
    ) -> Option<u32> {
        s.given(key)?;
        let v = self.uint(s, key, 0, min.into(), max.into());
        u32::try_from(v).ok().filter(|v| *v >= min)
    }

    /// `detection.quorum`: `all` or a number of Down votes.
    pub(in crate::config) fn quorum(&mut self, s: &Section, key: &str, default: Quorum) -> Quorum {
        let Some(n) = s.given(key) else {
            return default;
        };
        match &n.value {
            Value::Str(t) if t.trim().eq_ignore_ascii_case("all") => Quorum::All,
            Value::Int(i) if *i >= 1 && *i <= 1000 => Quorum::AtLeast(*i as u32),
            Value::Int(i) => {
                self.error(
                    n.pos,
                    format!("detection.quorum: {i} is out of range; write `all` or the number of Down votes needed (at least 1)"),
                );
                default
            }
            _ => {
                self.type_error(
                    n,
                    "detection.quorum",
                    "`all` or a number of Down votes (at least 1)",
                );
                default
            }
        }
    }

    // -- probes ---------------------------------------------------------------

    pub(in crate::config) fn probe_list(&mut self, s: &Section, key: &str) -> Vec<ProbeSpec> {
        let path = s.child(key);
        let items = self.list(s, key, "probes such as { tcp: 7071 }");
        let mut out = Vec::new();
        for item in items {
            if let Some(p) = self.probe(item, &path)
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
        out
    }

    pub(super) fn probe(&mut self, node: &Node, path: &str) -> Option<ProbeSpec> {
        let (kind, arg, kpos) = match &node.value {
            Value::Str(k) => (k.trim().to_owned(), None, node.pos),
            Value::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                (k.name.clone(), Some(v), k.pos)
            }
            Value::Map(_) => {
                self.error(
                    node.pos,
                    format!("{path}: one probe per list entry; write each on its own `- ` line, e.g. `- {{ tcp: 7071 }}`"),
                );
                return None;
            }
            _ => {
                self.type_error(
                    node,
                    path,
                    "a probe: icmp, { tcp: PORT }, { http: URL } or { ldap: PORT }",
                );
                return None;
            }
        };
        let port = |w: &mut Self, v: Option<&Node>| -> Option<u16> {
            match v.map(|v| (&v.value, v.pos)) {
                Some((Value::Int(p), _)) if (1..=65535).contains(p) => Some(*p as u16),
                Some((_, pos)) => {
                    w.error(
                        pos,
                        format!(
                            "{path}: `{kind}` needs a port number (1-65535), e.g. {{ {kind}: 389 }}"
                        ),
                    );
                    None
                }
                None => {
                    w.error(
                        kpos,
                        format!("{path}: `{kind}` needs a port number, e.g. {{ {kind}: 389 }}"),
                    );
                    None
                }
            }
        };
        match kind.as_str() {
            "icmp" => match arg.map(|a| &a.value) {
                None | Some(Value::Null) | Some(Value::Bool(true)) => Some(ProbeSpec::Icmp),
                Some(_) => {
                    self.error(
                        kpos,
                        format!("{path}: icmp takes no argument; write `- icmp`"),
                    );
                    None
                }
            },
            "tcp" => port(self, arg).map(ProbeSpec::Tcp),
            "ldap" => port(self, arg).map(ProbeSpec::Ldap),
            "http" => match arg.map(|a| (&a.value, a.pos)) {
                Some((Value::Str(u), pos)) => {
                    let u = u.trim();
                    if (u.starts_with("http://") || u.starts_with("https://"))
                        && u.len() > "https://".len()
                        && !u.contains(char::is_whitespace)
                    {
                        Some(ProbeSpec::Http(u.to_owned()))
                    } else {
                        self.error(
                            pos,
                            format!("{path}: `{u}` is not an http:// or https:// URL"),
                        );
                        None
                    }
                }
                other => {
                    let pos = other.map_or(kpos, |(_, p)| p);
                    self.error(pos, format!("{path}: http needs a URL, e.g. {{ http: \"https://mbox1.example.com/\" }}"));
                    None
                }
            },
            other => {
                let hint = suggest::hint(other, PROBE_KINDS);
                self.error(
                    kpos,
                    format!("{path}: unknown probe kind `{other}`; {hint}"),
                );
                None
            }
        }
    }

    /// `witnesses.command`: an argv list; `[]` is none.
    pub(in crate::config) fn witness_command(&mut self, s: &Section, key: &str) -> Vec<String> {
        match s.given(key) {
            Some(n) if n.value == Value::Seq(Vec::new()) => Vec::new(),
            Some(n) => self.argv(n, &s.child(key)).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// `consul.service_stop` / `service_start`: a non-empty argv list.
    pub(in crate::config) fn service_argv(
        &mut self,
        s: &Section,
        key: &str,
    ) -> Option<Vec<String>> {
        let n = s.given(key)?;
        let argv = self.argv(n, &s.child(key))?;
        if argv.is_empty() || argv[0].trim().is_empty() {
            self.error(
                n.pos,
                format!(
                    "{}: an empty command cannot stop or start service-discover; remove the \
                     key for the systemctl default",
                    s.child(key)
                ),
            );
            return None;
        }
        Some(argv)
    }

    /// `consul.service_discover_user`: a user name.
    pub(in crate::config) fn user_name(&mut self, s: &Section, key: &str) -> Option<String> {
        let (u, pos) = self.opt_string(s, key, "a user name")?;
        if u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            Some(u)
        } else {
            self.error(pos, format!("{}: `{u}` is not a user name", s.child(key)));
            None
        }
    }

    /// `carbonio.run_as`: a user name; written empty, habeat's own user.
    pub(in crate::config) fn run_as(
        &mut self,
        s: &Section,
        key: &str,
        default: Option<String>,
    ) -> Option<String> {
        if s.get(key).is_none() {
            return default;
        }
        let (u, pos) = self.opt_string(s, key, "a user name")?;
        if u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            Some(u)
        } else {
            self.error(pos, format!("carbonio.run_as: `{u}` is not a user name"));
            None
        }
    }

    /// `carbonio.module`, if given and valid.
    pub(in crate::config) fn module(&mut self, s: &Section, key: &str) -> Option<String> {
        match self.opt_string(s, key, "a module name such as MailReplica") {
            Some((m, _)) if m.chars().all(|c| c.is_ascii_alphanumeric()) => Some(m),
            Some((m, pos)) => {
                self.error(
                    pos,
                    format!("carbonio.module: `{m}` is not a module name; write MailReplica (or ha before the rename)"),
                );
                None
            }
            None => None,
        }
    }

    /// `metrics.listen`: `ip:port`, no hostnames.
    pub(in crate::config) fn listen(&mut self, s: &Section, key: &str) -> Option<SocketAddr> {
        let (l, pos) = self.opt_string(s, key, "ip:port, e.g. 127.0.0.1:9873")?;
        match l.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    pos,
                    format!(
                        "metrics.listen: `{l}` is not ip:port; write e.g. 127.0.0.1:9873 \
                         (an IPv6 address in brackets: [::1]:9873; no hostnames)"
                    ),
                );
                None
            }
        }
    }
}

impl Walker<'_> {
    /// `journal.max_size`: a size with a unit (`512KiB`, `10MiB`, `1GiB`;
    /// `K`, `M`, `G` are the same powers of 1024), within the bounds of
    /// [`Journal`](super::super::Journal).
    pub(in crate::config) fn size(&mut self, s: &Section, key: &str, default: u64) -> u64 {
        use super::super::Journal;
        let (min, max) = (Journal::MIN_SIZE, Journal::MAX_SIZE);
        let Some(node) = s.given(key) else {
            return default;
        };
        let path = s.child(key);
        let hint = "write a size with a unit, e.g. 512KiB, 10MiB or 1GiB";
        let text = match &node.value {
            Value::Str(t) => t.trim().to_owned(),
            Value::Int(i) => {
                self.error(node.pos, format!("{path}: {i} has no unit; {hint}"));
                return default;
            }
            _ => {
                self.type_error(node, &path, "a size such as 10MiB");
                return default;
            }
        };
        match parse_size(&text) {
            Some(n) if (min..=max).contains(&n) => n,
            Some(_) => {
                self.error(
                    node.pos,
                    format!(
                        "{path}: `{text}` is out of range: it must be between {} and {}",
                        format_size(min),
                        format_size(max)
                    ),
                );
                default
            }
            None => {
                self.error(node.pos, format!("{path}: `{text}` is not a size; {hint}"));
                default
            }
        }
    }
}

/// `10MiB` → 10485760. A whole number, optional blanks, then a unit:
/// `B`, `KiB`/`K`, `MiB`/`M`, `GiB`/`G`, `TiB`/`T` (powers of 1024, case
/// ignored). `None` for anything else, including no unit.
fn parse_size(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = text.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}
