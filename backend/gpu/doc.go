// Package gpu is one NVML sampler for the server: once a second it reads every GPU's
// utilisation, memory, temperature, power and compute processes, attributes GPU use to
// containers and students (PID -> /proc/PID/cgroup -> container ID -> owner), keeps a short
// history per GPU and tells subscribers when something changed. The only way to read a
// sample is Sampler.Snapshot, which takes the reader's identity and cuts the sample down to
// what that user may see: the privacy rule is decided here, never by a user interface.
//
// NVML is loaded at run time. On a machine without the NVIDIA driver Init fails and any
// further NVML call would end the process, so after a failed Init the sampler makes no NVML
// call ever again and only reports why it is unavailable.
package gpu
