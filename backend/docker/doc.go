// Package docker is the room for containers on the Docker Engine: owned, hardened, live.
//
// Owned: every object it creates carries the owner and the user's name for it as labels, and
// every call takes the caller's backend.Identity. Students reach their own containers only,
// TAs everyone's; a container is found by its labels (owner + name), never by engine name or
// ID, so a crafted reference cannot reach another user's object, and a miss and a "not yours"
// look the same.
//
// Hardened: the policy (capabilities, no-new-privileges, pids/memory/CPU limits, the only host
// mount being the user's own home, never the Docker socket, never host namespaces) is Config
// with safe defaults, applied to every container and not overridable per container.
//
// Live: one event stream per Service keeps an in-memory snapshot of the managed containers;
// sessions read it with Snapshot and are told of changes through Subscribe, so work against
// Docker does not grow with the number of dashboards. One reader samples the CPU and memory of
// every running container every two seconds (from the cgroup files where the engine is local,
// the stats API otherwise), whoever is looking.
package docker
