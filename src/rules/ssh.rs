//! What sshd says the login already proved: `SSH_AUTH_INFO_0` in the PAM environment, one line
//! per method that succeeded before PAM ran (`publickey ssh-ed25519 AAAA…`). Each key becomes
//! its type, its SHA256 fingerprint (as `ssh-keygen -lf` prints it: of the plain key, also for
//! a certificate) and, for a certificate, its key id and principals. Anything that does not
//! parse exactly makes the whole text malformed: it then proves nothing.
#![forbid(unsafe_code)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

use super::wire::Reader;

/// Longest SSH_AUTH_INFO_0 read (an RSA-8192 certificate is about 3 KB of base64).
pub const MAX_INFO_BYTES: usize = 64 * 1024;
/// Most method lines read (AuthenticationMethods lists a handful).
pub const MAX_LINES: usize = 16;

/// A key sshd accepted (`publickey` method).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenKey {
    /// The type as sshd named it (`ssh-ed25519`, `ssh-ed25519-cert-v01@openssh.com`).
    pub key_type: String,
    /// The key's own type: for a certificate, the certified key's (`ssh-ed25519`).
    pub plain_type: String,
    /// `SHA256:…` of the plain key, unpadded base64.
    pub fingerprint: String,
    pub certificate: Option<Certificate>,
}

/// The parts of an OpenSSH user certificate a rule may match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub key_id: String,
    pub principals: Vec<String>,
}

/// SSH_AUTH_INFO_0, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthInfo {
    /// Not set, or empty (keyboard-interactive alone): nothing proven before PAM.
    Missing,
    /// Set but not as sshd writes it; the text says what was wrong (never the value).
    Malformed(&'static str),
    Proven {
        methods: Vec<String>,
        keys: Vec<ProvenKey>,
    },
}

impl AuthInfo {
    /// The keys proven, none unless the text parsed.
    pub fn keys(&self) -> &[ProvenKey] {
        match self {
            Self::Proven { keys, .. } => keys,
            _ => &[],
        }
    }

    /// What binds a "trust this computer" grant: the fingerprints of the keys proven, in order.
    pub fn binding(&self) -> Option<String> {
        let keys = self.keys();
        (!keys.is_empty()).then(|| {
            keys.iter()
                .map(|k| k.fingerprint.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// Reads SSH_AUTH_INFO_0 as sshd writes it.
pub fn parse(info: Option<&str>) -> AuthInfo {
    let Some(info) = info.filter(|i| !i.trim().is_empty()) else {
        return AuthInfo::Missing;
    };
    if info.len() > MAX_INFO_BYTES {
        return AuthInfo::Malformed("longer than 64 KiB");
    }
    let body = info.strip_suffix('\n').unwrap_or(info);
    let mut methods = Vec::new();
    let mut keys = Vec::new();
    for line in body.split('\n') {
        if methods.len() == MAX_LINES {
            return AuthInfo::Malformed("more than 16 methods");
        }
        let (method, rest) = line.split_once(' ').unwrap_or((line, ""));
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-@.".contains(&b))
        {
            return AuthInfo::Malformed("a line does not start with a method name");
        }
        if method == "publickey" {
            match parse_key(rest) {
                Ok(key) => keys.push(key),
                Err(why) => return AuthInfo::Malformed(why),
            }
        } else if rest.chars().any(char::is_control) {
            return AuthInfo::Malformed("control characters");
        }
        methods.push(method.to_owned());
    }
    AuthInfo::Proven { methods, keys }
}

/// `TYPE BASE64` of a publickey line.
fn parse_key(rest: &str) -> Result<ProvenKey, &'static str> {
    let mut words = rest.split(' ');
    let (Some(key_type), Some(b64), None) = (words.next(), words.next(), words.next()) else {
        return Err("a publickey line is not `publickey TYPE BASE64`");
    };
    let blob = STANDARD
        .decode(b64)
        .map_err(|_| "a publickey line's key is not base64")?;
    let mut reader = Reader::new(&blob);
    if reader.text() != Some(key_type) {
        return Err("a publickey line's type differs from its key's");
    }
    let (plain_type, certificate, plain) = match cert_plain_type(key_type) {
        Some(plain_type) => {
            let (cert, plain) = parse_certificate(&mut reader, &plain_type)
                .ok_or("a certificate does not parse")?;
            (plain_type, Some(cert), plain)
        }
        None => {
            skip_key_fields(&mut reader, key_type).ok_or("a key does not parse")?;
            if !reader.is_empty() {
                return Err("a key has trailing bytes");
            }
            (key_type.to_owned(), None, blob.clone())
        }
    };
    Ok(ProvenKey {
        key_type: key_type.to_owned(),
        plain_type,
        fingerprint: fingerprint(&plain),
        certificate,
    })
}

/// `SHA256:` and the unpadded base64 of the blob's SHA-256, as `ssh-keygen -lf` prints it.
pub fn fingerprint(plain_blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(plain_blob))
    )
}

/// The `string`s and `mpint`s after the type name of each key type OpenSSH accepts.
fn key_field_count(plain_type: &str) -> Option<usize> {
    Some(match plain_type {
        "ssh-ed25519" => 1,
        "sk-ssh-ed25519@openssh.com" => 2,
        "ssh-rsa" => 2,
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => 2,
        "sk-ecdsa-sha2-nistp256@openssh.com" => 3,
        "ssh-dss" => 4,
        _ => return None,
    })
}

/// Whether OpenSSH names a key or certificate type so.
pub fn known_key_type(key_type: &str) -> bool {
    key_field_count(key_type).is_some() || cert_plain_type(key_type).is_some()
}

fn skip_key_fields(reader: &mut Reader<'_>, plain_type: &str) -> Option<()> {
    for _ in 0..key_field_count(plain_type)? {
        reader.bytes()?;
    }
    Some(())
}

/// `ssh-ed25519-cert-v01@openssh.com` → `ssh-ed25519`; the FIDO ones keep their suffix
/// (`sk-ssh-ed25519-cert-v01@openssh.com` → `sk-ssh-ed25519@openssh.com`).
fn cert_plain_type(key_type: &str) -> Option<String> {
    let stem = key_type.strip_suffix("-cert-v01@openssh.com")?;
    let plain = match stem.starts_with("sk-") {
        true => format!("{stem}@openssh.com"),
        false => stem.to_owned(),
    };
    key_field_count(&plain).map(|_| plain)
}

/// A user certificate after its type name (PROTOCOL.certkeys): nonce, the key's fields,
/// serial, type, key id, principals, validity, options, extensions, reserved, CA key,
/// signature — nothing after. Returns it and the plain key's blob (for the fingerprint).
fn parse_certificate(reader: &mut Reader<'_>, plain_type: &str) -> Option<(Certificate, Vec<u8>)> {
    reader.bytes()?; // nonce
    let mut plain = Vec::new();
    put_string(&mut plain, plain_type.as_bytes());
    for _ in 0..key_field_count(plain_type)? {
        put_string(&mut plain, reader.bytes()?);
    }
    reader.u64()?; // serial
    const USER_CERT: u32 = 1;
    if reader.u32()? != USER_CERT {
        return None;
    }
    let key_id = reader.text()?.to_owned();
    let mut principals = Vec::new();
    let mut list = Reader::new(reader.bytes()?);
    while !list.is_empty() {
        principals.push(list.text()?.to_owned());
    }
    reader.u64()?; // valid after
    reader.u64()?; // valid before
    for _ in 0..5 {
        reader.bytes()?; // critical options, extensions, reserved, CA key, signature
    }
    reader
        .is_empty()
        .then_some((Certificate { key_id, principals }, plain))
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ed25519 key blob with public key bytes `pk`.
    fn ed25519_blob(pk: &[u8; 32]) -> Vec<u8> {
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, pk);
        blob
    }

    pub(crate) fn user_cert(
        pk: &[u8; 32],
        key_id: &str,
        principals: &[&str],
        kind: u32,
    ) -> Vec<u8> {
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519-cert-v01@openssh.com");
        put_string(&mut blob, b"nonce-nonce-nonce");
        put_string(&mut blob, pk);
        blob.extend_from_slice(&7u64.to_be_bytes());
        blob.extend_from_slice(&kind.to_be_bytes());
        put_string(&mut blob, key_id.as_bytes());
        let mut list = Vec::new();
        for p in principals {
            put_string(&mut list, p.as_bytes());
        }
        put_string(&mut blob, &list);
        blob.extend_from_slice(&0u64.to_be_bytes());
        blob.extend_from_slice(&u64::MAX.to_be_bytes());
        for part in [&b""[..], b"", b"", &ed25519_blob(&[9; 32]), b"sig"] {
            put_string(&mut blob, part);
        }
        blob
    }

    fn line(key_type: &str, blob: &[u8]) -> String {
        format!("publickey {key_type} {}\n", STANDARD.encode(blob))
    }

    #[test]
    fn a_plain_key_and_its_fingerprint() {
        let blob = ed25519_blob(&[1; 32]);
        let info = parse(Some(&line("ssh-ed25519", &blob)));
        let AuthInfo::Proven { methods, keys } = &info else {
            panic!("{info:?}")
        };
        assert_eq!(methods, &["publickey"]);
        assert_eq!(keys[0].plain_type, "ssh-ed25519");
        assert_eq!(keys[0].fingerprint, fingerprint(&blob));
        assert!(keys[0].fingerprint.starts_with("SHA256:") && !keys[0].fingerprint.ends_with('='));
        assert_eq!(
            info.binding().as_deref(),
            Some(keys[0].fingerprint.as_str())
        );
    }

    #[test]
    fn a_certificate_gives_key_id_principals_and_the_plain_fingerprint() {
        let cert = user_cert(&[2; 32], "deploy-bot", &["deploy", "ops"], 1);
        let info = parse(Some(&format!(
            "password\n{}",
            line("ssh-ed25519-cert-v01@openssh.com", &cert)
        )));
        let key = &info.keys()[0];
        assert_eq!(key.plain_type, "ssh-ed25519");
        assert_eq!(key.fingerprint, fingerprint(&ed25519_blob(&[2; 32])));
        let c = key.certificate.as_ref().unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.principals.clone()),
            ("deploy-bot", vec!["deploy".to_owned(), "ops".to_owned()])
        );
        assert_eq!(
            cert_plain_type("sk-ssh-ed25519-cert-v01@openssh.com").as_deref(),
            Some("sk-ssh-ed25519@openssh.com")
        );
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(parse(None), AuthInfo::Missing);
        assert_eq!(parse(Some("")), AuthInfo::Missing);
        let good = ed25519_blob(&[1; 32]);
        let mut trailing = good.clone();
        trailing.push(0);
        let host_cert = user_cert(&[2; 32], "h", &["h"], 2);
        let mut cut = user_cert(&[2; 32], "x", &["x"], 1);
        cut.truncate(cut.len() - 1);
        for bad in [
            "publickey ssh-ed25519\n".to_owned(),
            "publickey ssh-ed25519 !!!\n".into(),
            line("ssh-rsa", &good),
            line("ssh-ed25519", &trailing),
            line("ssh-ed25519-cert-v01@openssh.com", &host_cert),
            line("ssh-ed25519-cert-v01@openssh.com", &cut),
            format!("publickey ssh-ed25519 {} extra\n", STANDARD.encode(&good)),
            "pass\u{1b}word\n".into(),
            " publickey\n".into(),
            "\n\npassword\n".into(),
            "password\n".repeat(17),
            "x".repeat(MAX_INFO_BYTES + 1),
        ] {
            assert!(
                matches!(parse(Some(&bad)), AuthInfo::Malformed(_)),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            let _ = parse(Some(&text));
        }

        #[test]
        fn mangled_certificates_never_panic(cut in 0usize..200, flip in 0usize..200, byte in any::<u8>()) {
            let mut cert = user_cert(&[3; 32], "id", &["a", "b"], 1);
            if flip < cert.len() { cert[flip] = byte; }
            cert.truncate(cut.max(4).min(cert.len()));
            let _ = parse(Some(&line("ssh-ed25519-cert-v01@openssh.com", &cert)));
        }
    }
}
