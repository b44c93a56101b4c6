package recording

import "syscall"

// syscallNoFollow refuses to open a symbolic link put in place of a recording.
const syscallNoFollow = syscall.O_NOFOLLOW
