"""Linux process memory for the benchmarks: fields of /proc/self/status, and
resetting the peak RSS (VmHWM) so that a call's own peak can be read."""


def status_kb(field: str) -> int:
  """A /proc/self/status field in kB (VmRSS, VmHWM, RssAnon, ...)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  raise KeyError(field)


def reset_peak() -> int:
  """Resets VmHWM to the current RSS (clear_refs); returns that RSS in bytes."""
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
  return status_kb("VmRSS") * 1024
