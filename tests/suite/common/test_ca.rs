//! Certificates for TLS tests, made with the `openssl` command line: a CA of the
//! test's own and the server certificates it signs, in a temp dir removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in a directory of its own.
pub struct TestCa {
    dir: PathBuf,
}

/// A server certificate and its key.
pub struct Issued {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jst_ca_{}", super::unique()));
        std::fs::create_dir(&dir).expect("create the CA dir");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        Self { dir }
    }

    /// The CA's certificate (PEM).
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn issue(&self, file: &str, names: &[&str]) -> Issued {
        let sans: Vec<String> = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{name}"),
                Err(_) => format!("DNS:{name}"),
            })
            .collect();
        std::fs::write(
            self.dir.join(format!("{file}.ext")),
            format!("subjectAltName={}\n", sans.join(",")),
        )
        .expect("write the extensions");
        let (key, csr, crt) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.crt"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={}", names[0]),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &format!("{file}.ext"),
            ],
        );
        Issued {
            certificate: self.dir.join(crt),
            key: self.dir.join(key),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
