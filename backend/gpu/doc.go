// Package gpu is one NVML sampler for the server: once a second it reads every GPU's
// utilisation, memory, temperature, power and compute processes, attributes GPU use to
// containers and students (PID -> /proc/PID/cgroup -> container ID -> owner), keeps a short
// history per GPU and tells subscribers when something changed. View cuts a sample down to
// what one user may see.
//
// NVML is loaded at run time. On a machine without the NVIDIA driver Init fails and any
// further NVML call would end the process, so after a failed Init the sampler makes no NVML
// call ever again and only reports why it is unavailable.
package gpu
