//! The guest kernel: a path given by the user, or a Debian cloud kernel fetched with apt and
//! cached under `target/vm/kernels/`.
//!
//! Debian names each kernel build in its package (`linux-image-6.12.117+deb12-cloud-amd64`);
//! a meta-package (`linux-image-6.12-cloud-amd64`) depends on the current one. The meta-package
//! is resolved through `apt-cache` every run, so a kernel security update is picked up, and the
//! exact package is downloaded (not installed) and unpacked only once.
//!
//! bookworm's own sources serve 6.1 and 6.12. Older lines come from their own release (5.10 from
//! bullseye), read through a private apt configuration under the cache, so the host's sources
//! and package state are never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::cmd;

/// Which kernel to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A Debian cloud kernel through its meta-package.
    Debian(DebianKernel),
    /// A bzImage on disk.
    Path(PathBuf),
}

/// The Debian kernels the VM suite knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebianKernel {
    /// 6.12 from bookworm-security: BPF LSM, BTF, Landlock ABI 6, pure cgroup v2.
    V6_12,
    /// 6.1, bookworm's own kernel: Landlock ABI 2.
    V6_1,
    /// 5.10, bullseye's kernel: no Landlock at all (guard must refuse there).
    V5_10,
}

impl DebianKernel {
    /// The meta-package that depends on the current build of this kernel line.
    fn meta_package(self) -> &'static str {
        match self {
            DebianKernel::V6_12 => "linux-image-6.12-cloud-amd64",
            DebianKernel::V6_1 | DebianKernel::V5_10 => "linux-image-cloud-amd64",
        }
    }

    /// The Debian release whose sources serve this line when the host's do not (bookworm's
    /// sources serve 6.1 and 6.12).
    fn foreign_release(self) -> Option<&'static str> {
        match self {
            DebianKernel::V5_10 => Some("bullseye"),
            DebianKernel::V6_12 | DebianKernel::V6_1 => None,
        }
    }

    /// The name `--kernel` takes.
    pub fn name(self) -> &'static str {
        match self {
            DebianKernel::V6_12 => "debian-6.12",
            DebianKernel::V6_1 => "debian-6.1",
            DebianKernel::V5_10 => "debian-5.10",
        }
    }

    /// The version prefix the resolved package must have, so a meta-package that moved to
    /// another kernel line is noticed instead of booted.
    fn line(self) -> &'static str {
        match self {
            DebianKernel::V6_12 => "6.12",
            DebianKernel::V6_1 => "6.1",
            DebianKernel::V5_10 => "5.10",
        }
    }
}

impl std::str::FromStr for KernelSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "debian-6.12" => KernelSpec::Debian(DebianKernel::V6_12),
            "debian-6.1" => KernelSpec::Debian(DebianKernel::V6_1),
            "debian-5.10" => KernelSpec::Debian(DebianKernel::V5_10),
            path if path.contains('/') || Path::new(path).exists() => {
                KernelSpec::Path(PathBuf::from(path))
            }
            other => {
                return Err(format!(
                    "unknown kernel {other:?}: use debian-6.12, debian-6.1, debian-5.10 or a path to a \
                     bzImage"
                ));
            }
        })
    }
}

/// The bzImage to boot for `spec`, downloading and unpacking it into `cache` when needed.
pub fn prepare(spec: &KernelSpec, cache: &Path) -> anyhow::Result<PathBuf> {
    let debian = match spec {
        KernelSpec::Path(path) => {
            if !path.is_file() {
                bail!("kernel {} is not a file", path.display());
            }
            return Ok(path.clone());
        }
        KernelSpec::Debian(debian) => *debian,
    };
    let apt = Apt::for_kernel(debian, cache)?;
    let package = resolve_package(debian, &apt)?;
    let dir = cache.join(&package);
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.is_file() {
        eprintln!("vm: kernel {package} (cached)");
        return Ok(vmlinuz);
    }
    eprintln!("vm: fetching kernel {package}");
    let download = cache.join("download");
    std::fs::create_dir_all(&download)
        .with_context(|| format!("cannot create {}", download.display()))?;
    cmd::run(
        apt.get()
            .args(["download", "-q", &package])
            .current_dir(&download),
    )?;
    let deb = find_deb(&download, &package)?;
    let unpacked = cache.join(format!("{package}.tmp"));
    // A half-finished earlier unpack is thrown away, not trusted.
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)
        .with_context(|| format!("cannot create {}", unpacked.display()))?;
    extract_boot(&deb, &unpacked)?;
    let boot = unpacked.join("boot");
    let image = first_with_prefix(&boot, "vmlinuz-")?
        .with_context(|| format!("{} has no boot/vmlinuz-*", deb.display()))?;
    std::fs::rename(&image, unpacked.join("vmlinuz"))?;
    if let Some(config) = first_with_prefix(&boot, "config-")? {
        std::fs::rename(&config, unpacked.join("config"))?;
    }
    let _ = std::fs::remove_dir_all(&boot);
    let _ = std::fs::remove_dir_all(&dir);
    // Renamed into place last, so the cache holds either a whole kernel or none.
    std::fs::rename(&unpacked, &dir)
        .with_context(|| format!("cannot move the kernel to {}", dir.display()))?;
    let _ = std::fs::remove_file(&deb);
    Ok(vmlinuz)
}

/// The exact package behind the meta-package, refreshing apt's lists once if they do not know
/// it (a fresh machine may have none).
fn resolve_package(debian: DebianKernel, apt: &Apt) -> anyhow::Result<String> {
    let meta = debian.meta_package();
    let package = match package_of_meta(meta, apt)? {
        Some(package) => package,
        None => {
            eprintln!("vm: apt does not know {meta}; refreshing the package lists");
            cmd::run(apt.get().args(["update", "-q"]))?;
            package_of_meta(meta, apt)?.with_context(|| {
                let sources = debian.foreign_release().unwrap_or("bookworm-security");
                format!("apt knows no {meta}: are {sources}'s sources reachable?")
            })?
        }
    };
    let expected = format!("linux-image-{}.", debian.line());
    if !package.starts_with(&expected) {
        bail!(
            "{meta} now depends on {package}, not a {} kernel",
            debian.line()
        );
    }
    Ok(package)
}

fn package_of_meta(meta: &str, apt: &Apt) -> anyhow::Result<Option<String>> {
    let output = cmd::probe(apt.cache().args(["show", "--no-all-versions", meta]))?
        .context("apt-cache not found: the VM suite fetches Debian kernels with apt")?;
    if !output.status.success() {
        return Ok(None);
    }
    Ok(image_dependency(&String::from_utf8_lossy(&output.stdout)))
}

/// apt as the host has it, or with a private configuration that reads only another release's
/// sources (its lists and downloads kept under the kernel cache).
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn for_kernel(debian: DebianKernel, cache: &Path) -> anyhow::Result<Apt> {
        let Some(release) = debian.foreign_release() else {
            return Ok(Apt {
                options: Vec::new(),
            });
        };
        let dir = cache.join(format!("apt-{release}"));
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        let sources = dir.join("sources.list");
        // The release and its security updates, checked with Debian's archive keyring (which
        // bookworm ships with bullseye's keys).
        let keyring = "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg";
        std::fs::write(
            &sources,
            format!(
                "deb [{keyring}] http://deb.debian.org/debian {release} main\n\
                 deb [{keyring}] http://deb.debian.org/debian-security {release}-security main\n"
            ),
        )
        .with_context(|| format!("cannot write {}", sources.display()))?;
        let options = [
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/nonexistent".to_string(),
            format!("Dir::State::Lists={}", dir.join("lists").display()),
            format!("Dir::Cache={}", dir.join("cache").display()),
            // No installed-package state: nothing is installed through this configuration.
            "Dir::State::status=/dev/null".to_string(),
        ];
        Ok(Apt {
            options: options
                .iter()
                .flat_map(|o| ["-o".to_string(), o.clone()])
                .collect(),
        })
    }

    fn get(&self) -> Command {
        let mut command = Command::new("apt-get");
        command.args(&self.options);
        command
    }

    fn cache(&self) -> Command {
        let mut command = Command::new("apt-cache");
        command.args(&self.options);
        command
    }
}

/// The `linux-image-*` package named in the `Depends:` field of `apt-cache show` output.
fn image_dependency(show: &str) -> Option<String> {
    let depends = show.lines().find_map(|l| l.strip_prefix("Depends:"))?;
    depends
        .split(',')
        .filter_map(|alt| alt.split_whitespace().next())
        .find(|name| name.starts_with("linux-image-"))
        .map(String::from)
}

/// The `.deb` apt-get downloaded for `package` (its file name carries the version).
fn find_deb(dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    first_with_prefix(dir, &format!("{package}_"))?
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| {
            format!(
                "apt-get download left no {package}_*.deb in {}",
                dir.display()
            )
        })
}

fn first_with_prefix(dir: &Path, prefix: &str) -> anyhow::Result<Option<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// Unpacks only `./boot/` of the package: the modules are not needed (everything the suite
/// uses is built into the cloud kernel) and are most of its size.
fn extract_boot(deb: &Path, into: &Path) -> anyhow::Result<()> {
    let mut dpkg = Command::new("dpkg-deb");
    dpkg.arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped());
    let line = cmd::display(&dpkg);
    let mut dpkg_child = dpkg
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let tar_input = dpkg_child
        .stdout
        .take()
        .context("dpkg-deb has no stdout pipe")?;
    let tar_status = Command::new("tar")
        .args(["-x", "--wildcards", "./boot/*"])
        .current_dir(into)
        .stdin(tar_input)
        .status()
        .context("cannot start tar")?;
    let dpkg_status = dpkg_child.wait()?;
    if !dpkg_status.success() || !tar_status.success() {
        bail!(
            "unpacking {} failed (dpkg-deb: {dpkg_status}, tar: {tar_status})",
            deb.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_parse() {
        assert_eq!(
            "debian-6.12".parse::<KernelSpec>(),
            Ok(KernelSpec::Debian(DebianKernel::V6_12))
        );
        assert_eq!(
            "debian-6.1".parse::<KernelSpec>(),
            Ok(KernelSpec::Debian(DebianKernel::V6_1))
        );
        assert_eq!(
            "./bzImage".parse::<KernelSpec>(),
            Ok(KernelSpec::Path(PathBuf::from("./bzImage")))
        );
        assert_eq!(
            "debian-5.10".parse::<KernelSpec>(),
            Ok(KernelSpec::Debian(DebianKernel::V5_10))
        );
        assert!("debian-4.19".parse::<KernelSpec>().is_err());
    }

    #[test]
    fn the_image_package_comes_from_depends() {
        let show = "Package: linux-image-6.12-cloud-amd64\nVersion: 6.12.117-1~deb12u1\n\
                    Depends: linux-image-6.12.117+deb12-cloud-amd64 (= 6.12.117-1~deb12u1)\n\
                    Description: Linux for x86-64 cloud\n";
        assert_eq!(
            image_dependency(show).as_deref(),
            Some("linux-image-6.12.117+deb12-cloud-amd64")
        );
        assert_eq!(image_dependency("Package: x\n"), None);
        assert_eq!(
            image_dependency("Depends: foo, linux-image-6.1.0-47-cloud-amd64\n").as_deref(),
            Some("linux-image-6.1.0-47-cloud-amd64")
        );
    }
}
