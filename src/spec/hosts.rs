//! The hosts file of a run over SSH (`raftcheck run --hosts hosts.toml`): which machines the
//! nodes run on, and how to reach them. Node i runs on host i; the cluster spec is the same one
//! a local run uses.
//!
//! ```toml
//! # Defaults for every host; each [[host]] may override any of them.
//! user = "admin"
//! key = "~/.ssh/raftcheck"       # private key (ssh's -i); none: ssh's own config and agent
//! port = 22
//! sudo = true                    # run everything through `sudo -n` (iptables, the server)
//! dir = "/var/tmp/raftcheck"     # where runs put their files on the host
//! known_hosts = "./known_hosts"  # none: ssh's default
//! host_key_check = "accept-new"  # strict | accept-new | off
//!
//! [[host]]
//! address = "10.0.0.11"
//! [[host]]
//! address = "db2.example.com"
//! binary = "/usr/local/bin/etcd" # use this path on the host instead of uploading
//! ```
//!
//! A name is resolved once, when the file is loaded, to the IPv4 address the nodes are given
//! and that partitions drop by (iptables rules are IPv4).

use super::SpecError;
use serde::Deserialize;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// How strictly ssh checks a host's key (its `StrictHostKeyChecking`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyCheck {
    /// The key must already be in known_hosts.
    Strict,
    /// A host seen for the first time is added; a changed key is refused (ssh's TOFU).
    #[default]
    AcceptNew,
    /// Any key is accepted (throwaway test machines only).
    Off,
}

/// A `[[host]]` table and the file's top level take the same optional fields (the top level's
/// are the defaults). serde cannot both flatten and deny unknown fields, so this macro spells
/// them out in both structs; the merge reads them by name from each.
macro_rules! raw_with_fields {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $extra:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($(#[$fm])* $extra: $ty,)*
            user: Option<String>,
            key: Option<String>,
            port: Option<u16>,
            sudo: Option<bool>,
            dir: Option<String>,
            known_hosts: Option<String>,
            host_key_check: Option<HostKeyCheck>,
            binary: Option<String>,
        }
    };
}

raw_with_fields! {
    /// One `[[host]]` table as written.
    struct RawEntry {
        address: String,
    }
}

raw_with_fields! {
    /// The file as written: the defaults at the top level, then the hosts.
    struct RawFile {
        #[serde(default)]
        host: Vec<RawEntry>,
    }
}

/// One machine, with the file's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    /// As written in the file (an address or a name), for ssh and for messages.
    pub address: String,
    /// What `address` resolved to: the node's `{ip}`, and what partitions drop.
    pub ip: IpAddr,
    /// The login; none: ssh's default (its config, or the local user name).
    pub user: Option<String>,
    /// The private key; none: ssh's config and agent decide.
    pub key: Option<PathBuf>,
    /// The SSH port.
    pub port: u16,
    /// Prefix every command with `sudo -n`.
    pub sudo: bool,
    /// The directory runs put their files in on this host (absolute).
    pub dir: String,
    /// The known_hosts file to check against and add to; none: ssh's default.
    pub known_hosts: Option<PathBuf>,
    /// How strictly the host key is checked.
    pub host_key_check: HostKeyCheck,
    /// The server binary's path on this host; none: the local binary is uploaded.
    pub binary: Option<String>,
}

impl HostEntry {
    /// `user@address:port`, the way a user recognises the host in a message.
    pub fn label(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}:{}", self.address, self.port),
            None => format!("{}:{}", self.address, self.port),
        }
    }
}

/// A loaded hosts file.
#[derive(Clone, Debug)]
pub struct HostsFile {
    /// The file it came from, for messages.
    pub path: PathBuf,
    /// In node order: node i runs on `hosts[i]`.
    pub hosts: Vec<HostEntry>,
}

/// `~/x` to `$HOME/x`; paths relative to the hosts file's directory otherwise.
fn local_path(base: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

impl HostsFile {
    /// Read and check `path`: every host has an address that resolves to IPv4, an absolute
    /// `dir` without characters a shell would need quoted twice, and a key file that exists.
    pub fn load(path: &Path) -> Result<HostsFile, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawFile = toml::from_str(&text).map_err(|e| SpecError::Parse {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let bad = |field: String, msg: String| SpecError::Invalid {
            path: path.to_path_buf(),
            field,
            msg,
        };
        if raw.host.is_empty() {
            return Err(bad(
                "host".into(),
                "no [[host]] entries: name one machine per node".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut hosts = Vec::new();
        for (i, h) in raw.host.iter().enumerate() {
            let field = |f: &str| format!("host[{i}].{f}");
            let (d, f) = (&raw, h);
            let port = f.port.or(d.port).unwrap_or(22);
            if port == 0 {
                return Err(bad(field("port"), "must be 1 to 65535".into()));
            }
            let address = h.address.trim().to_string();
            if address.is_empty()
                || address.starts_with('-')
                || address.contains(char::is_whitespace)
            {
                return Err(bad(
                    field("address"),
                    format!("{:?} is not a host address or name", h.address),
                ));
            }
            let ip = resolve(&address, port).map_err(|msg| bad(field("address"), msg))?;
            // Two nodes on one address would bind the same client and peer ports, and a
            // partition, which drops by source address, could not separate them.
            if let Some(j) = hosts.iter().position(|e: &HostEntry| e.ip == ip) {
                return Err(bad(
                    field("address"),
                    format!(
                        "{address} ({ip}) is also host[{j}]'s address; every node needs its own \
                         IPv4 address (clients reach node i at host i's address, and partitions \
                         drop traffic by source address)"
                    ),
                ));
            }
            let dir = f
                .dir
                .clone()
                .or_else(|| d.dir.clone())
                .unwrap_or_else(|| "/tmp/raftcheck".into());
            if !dir.starts_with('/')
                || !dir
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
            {
                return Err(bad(
                    field("dir"),
                    format!("{dir:?} must be an absolute path of letters, digits and / . _ -"),
                ));
            }
            let key = f
                .key
                .as_ref()
                .or(d.key.as_ref())
                .map(|k| local_path(base, k));
            if let Some(k) = &key {
                if !k.is_file() {
                    return Err(bad(field("key"), format!("no key file at {}", k.display())));
                }
            }
            let user = f.user.clone().or_else(|| d.user.clone());
            if user
                .as_deref()
                .is_some_and(|u| u.is_empty() || u.starts_with('-'))
            {
                return Err(bad(field("user"), "must be a login name".into()));
            }
            hosts.push(HostEntry {
                address,
                ip,
                user,
                key,
                port,
                sudo: f.sudo.or(d.sudo).unwrap_or(false),
                dir: dir.trim_end_matches('/').to_string(),
                known_hosts: f
                    .known_hosts
                    .as_ref()
                    .or(d.known_hosts.as_ref())
                    .map(|k| local_path(base, k)),
                host_key_check: f.host_key_check.or(d.host_key_check).unwrap_or_default(),
                binary: f.binary.clone().or_else(|| d.binary.clone()),
            });
        }
        Ok(HostsFile {
            path: path.to_path_buf(),
            hosts,
        })
    }
}

/// The first IPv4 address of `address`.
fn resolve(address: &str, port: u16) -> Result<IpAddr, String> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return if ip.is_ipv4() {
            Ok(ip)
        } else {
            Err(format!(
                "{address} is IPv6; partitions are IPv4 iptables rules, so give an IPv4 address"
            ))
        };
    }
    let addrs = (address, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address:?}: {e}"))?;
    addrs
        .map(|a| a.ip())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| format!("{address:?} has no IPv4 address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<HostsFile, SpecError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("hosts.toml");
        std::fs::write(&p, text).expect("write");
        HostsFile::load(&p)
    }

    #[test]
    fn defaults_fill_in_and_entries_override() {
        let h = load(
            "user = \"admin\"\nsudo = true\nport = 2222\n\
             [[host]]\naddress = \"10.1.2.3\"\n\
             [[host]]\naddress = \"127.0.0.1\"\nport = 22\nuser = \"root\"\nsudo = false\n",
        )
        .expect("loads");
        assert_eq!(h.hosts.len(), 2);
        assert_eq!(h.hosts[0].label(), "admin@10.1.2.3:2222");
        assert!(h.hosts[0].sudo);
        assert_eq!(h.hosts[0].dir, "/tmp/raftcheck");
        assert_eq!(h.hosts[1].label(), "root@127.0.0.1:22");
        assert!(!h.hosts[1].sudo);
        assert_eq!(h.hosts[0].host_key_check, HostKeyCheck::AcceptNew);
    }

    #[test]
    fn bad_files_name_the_field() {
        for (text, want) in [
            ("", "no [[host]]"),
            ("[[host]]\naddress = \"\"\n", "host[0].address"),
            (
                "[[host]]\naddress = \"-oProxyCommand=x\"\n",
                "host[0].address",
            ),
            ("[[host]]\naddress = \"::1\"\n", "IPv6"),
            (
                "[[host]]\naddress = \"10.0.0.1\"\ndir = \"tmp\"\n",
                "host[0].dir",
            ),
            (
                "[[host]]\naddress = \"10.0.0.1\"\ndir = \"/a b\"\n",
                "host[0].dir",
            ),
            (
                "[[host]]\naddress = \"10.0.0.1\"\nkey = \"/nonexistent/key\"\n",
                "host[0].key",
            ),
            (
                "[[host]]\naddress = \"10.0.0.1\"\nport = 0\n",
                "host[0].port",
            ),
            (
                "[[host]]\naddress = \"10.0.0.1\"\nsudoo = true\n",
                "unknown field",
            ),
            (
                "[[host]]\naddress = \"no-such-host.invalid\"\n",
                "cannot resolve",
            ),
            (
                "[[host]]\naddress = \"10.0.0.1\"\nhost_key_check = \"maybe\"\n",
                "host_key_check",
            ),
            (
                "[[host]]\naddress = \"127.0.0.1\"\n[[host]]\naddress = \"localhost\"\nport = 2222\n",
                "host[1].address",
            ),
        ] {
            let e = load(text).expect_err(text).to_string();
            assert!(
                e.contains("hosts.toml") && e.contains(want),
                "{text:?}: {e}"
            );
        }
    }
}
