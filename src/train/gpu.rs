//! Parses `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total
//! --format=csv,noheader,nounits`. A box without a working driver simply has no GPUs to show:
//! every failure of nvidia-smi becomes an empty list with a reason, never an error.

use serde::Serialize;

/// The query the probe runs; the parser expects exactly these columns in this order.
pub const QUERY_GPU_ARGS: &str =
    "--query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    pub index: Option<u32>,
    pub name: Option<String>,
    pub util_percent: Option<u32>,
    pub mem_used_mib: Option<u64>,
    pub mem_total_mib: Option<u64>,
}

/// GPUs found, or why none could be listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuReport {
    pub gpus: Vec<Gpu>,
    /// Set when nvidia-smi is missing or failed: its first line of output, or what happened.
    pub unavailable: Option<String>,
}

/// `[N/A]`, `[Not Supported]`, `N/A` and empty fields are unknown; `97` or `97.0` are numbers.
fn field<T: TryFrom<u64>>(s: &str) -> Option<T> {
    let s = s.trim();
    let n: u64 = match s.parse() {
        Ok(n) => n,
        Err(_) => {
            let f: f64 = s.parse().ok()?;
            if !(f.is_finite() && f >= 0.0) {
                return None;
            }
            f.round() as u64
        }
    };
    T::try_from(n).ok()
}

fn parse_line(line: &str) -> Option<Gpu> {
    let parts: Vec<&str> = line.split(", ").collect();
    if parts.len() < 5 {
        return None;
    }
    // A name containing ", " must not shift the numbers: they are the first and the last three.
    let n = parts.len();
    let index = field(parts[0]);
    index?;
    let name = parts[1..n - 3].join(", ").trim().to_string();
    Some(Gpu {
        index,
        name: (!name.is_empty() && !name.starts_with('[')).then_some(name),
        util_percent: field(parts[n - 3]),
        mem_used_mib: field(parts[n - 2]),
        mem_total_mib: field(parts[n - 1]),
    })
}

/// `output` is what nvidia-smi printed (stdout and stderr), `exit_code` its status (`None` when
/// it was not run; 127 when not installed; 124 when `timeout` killed it).
pub fn parse_nvidia_smi(output: &[u8], exit_code: Option<i32>) -> GpuReport {
    let text = String::from_utf8_lossy(output);
    let first_line = text.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string);
    match exit_code {
        None => {
            return GpuReport {
                gpus: vec![],
                unavailable: Some("nvidia-smi was not run".into()),
            }
        }
        Some(127) => {
            return GpuReport {
                gpus: vec![],
                unavailable: Some("nvidia-smi is not installed".into()),
            }
        }
        Some(124) => {
            return GpuReport {
                gpus: vec![],
                unavailable: Some("nvidia-smi did not answer in time".into()),
            }
        }
        Some(0) => {}
        Some(code) => {
            let why = first_line.unwrap_or_else(|| format!("nvidia-smi failed with exit status {code}"));
            return GpuReport {
                gpus: vec![],
                unavailable: Some(why),
            };
        }
    }
    let gpus: Vec<Gpu> = text.lines().filter_map(parse_line).collect();
    // Exit 0 with a message and no rows happens too (e.g. "No devices were found" on old drivers).
    let unavailable = if gpus.is_empty() {
        Some(first_line.unwrap_or_else(|| "no GPUs listed".into()))
    } else {
        None
    };
    GpuReport { gpus, unavailable }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fixtures;

    #[test]
    fn two_gpus_with_unsupported_fields() {
        let r = parse_nvidia_smi(&fixtures::own("nvidia-smi/two-gpus.csv"), Some(0));
        assert_eq!(r.unavailable, None);
        assert_eq!(
            r.gpus,
            vec![
                Gpu {
                    index: Some(0),
                    name: Some("NVIDIA H100 80GB HBM3".into()),
                    util_percent: Some(97),
                    mem_used_mib: Some(71234),
                    mem_total_mib: Some(81559)
                },
                Gpu {
                    index: Some(1),
                    name: Some("NVIDIA A100-SXM4-40GB, MIG 1g.5gb".into()),
                    util_percent: None,
                    mem_used_mib: None,
                    mem_total_mib: Some(40960)
                },
            ]
        );
    }

    #[test]
    fn driver_failures_mean_no_gpus_with_a_reason() {
        let r = parse_nvidia_smi(&fixtures::own("nvidia-smi/driver-failure.txt"), Some(9));
        assert!(r.gpus.is_empty());
        assert!(r
            .unavailable
            .unwrap()
            .contains("couldn't communicate with the NVIDIA driver"));
        let r = parse_nvidia_smi(&fixtures::own("nvidia-smi/no-devices.txt"), Some(6));
        assert_eq!(r.unavailable.as_deref(), Some("No devices were found"));
        let r = parse_nvidia_smi(
            b"Failed to initialize NVML: Driver/library version mismatch\n",
            Some(18),
        );
        assert_eq!(
            r.unavailable.as_deref(),
            Some("Failed to initialize NVML: Driver/library version mismatch")
        );
        assert_eq!(
            parse_nvidia_smi(b"", Some(127)).unavailable.as_deref(),
            Some("nvidia-smi is not installed")
        );
        assert!(parse_nvidia_smi(b"", Some(127)).gpus.is_empty());
        assert!(parse_nvidia_smi(b"No devices were found\n", Some(0)).gpus.is_empty());
        assert!(parse_nvidia_smi(b"", Some(124)).unavailable.is_some());
    }
}
