//! The x86_64 syscalls lockdump names, in one table, and the thread header's
//! rendering of the call a thread sits in (`futex(0x..., FUTEX_WAIT_PRIVATE, 2)`).
//!
//! Numbers are the libc crate's x86_64 `SYS_*` constants (the kernel's
//! `arch/x86/entry/syscalls/syscall_64.tbl`). The runtimes' "blocked in"
//! descriptions ([`crate::runtimes::syscalls`]) and futex decoding take their
//! numbers and names from here too.

struct Entry {
    nr: i64,
    name: &'static str,
}

/// Declares the `nr` constants and the table from one list, so they cannot disagree.
/// The numbers are the libc crate's `SYS_*` constants for x86_64: every one
/// it defines is here (generated from libc 0.2.191's
/// `unix/linux_like/linux/gnu/b64/x86_64/not_x32.rs`), so every call a
/// thread can be found in is named.
macro_rules! syscalls {
    ($($konst:ident = $sys:ident $name:literal;)*) => {
        /// x86_64 syscall numbers, by their kernel names.
        #[allow(dead_code)]
        pub mod nr {
            $(pub const $konst: i64 = libc::$sys;)*
        }
        /// Sorted by number.
        const TABLE: &[Entry] = &[$(Entry { nr: nr::$konst, name: $name }),*];
        /// The libc constant each entry's number comes from (names must agree).
        #[cfg(test)]
        const SOURCES: &[&str] = &[$(stringify!($sys)),*];
    };
}

syscalls! {
    READ = SYS_read "read";
    WRITE = SYS_write "write";
    OPEN = SYS_open "open";
    CLOSE = SYS_close "close";
    STAT = SYS_stat "stat";
    FSTAT = SYS_fstat "fstat";
    LSTAT = SYS_lstat "lstat";
    POLL = SYS_poll "poll";
    LSEEK = SYS_lseek "lseek";
    MMAP = SYS_mmap "mmap";
    MPROTECT = SYS_mprotect "mprotect";
    MUNMAP = SYS_munmap "munmap";
    BRK = SYS_brk "brk";
    RT_SIGACTION = SYS_rt_sigaction "rt_sigaction";
    RT_SIGPROCMASK = SYS_rt_sigprocmask "rt_sigprocmask";
    RT_SIGRETURN = SYS_rt_sigreturn "rt_sigreturn";
    IOCTL = SYS_ioctl "ioctl";
    PREAD64 = SYS_pread64 "pread64";
    PWRITE64 = SYS_pwrite64 "pwrite64";
    READV = SYS_readv "readv";
    WRITEV = SYS_writev "writev";
    ACCESS = SYS_access "access";
    PIPE = SYS_pipe "pipe";
    SELECT = SYS_select "select";
    SCHED_YIELD = SYS_sched_yield "sched_yield";
    MREMAP = SYS_mremap "mremap";
    MSYNC = SYS_msync "msync";
    MINCORE = SYS_mincore "mincore";
    MADVISE = SYS_madvise "madvise";
    SHMGET = SYS_shmget "shmget";
    SHMAT = SYS_shmat "shmat";
    SHMCTL = SYS_shmctl "shmctl";
    DUP = SYS_dup "dup";
    DUP2 = SYS_dup2 "dup2";
    PAUSE = SYS_pause "pause";
    NANOSLEEP = SYS_nanosleep "nanosleep";
    GETITIMER = SYS_getitimer "getitimer";
    ALARM = SYS_alarm "alarm";
    SETITIMER = SYS_setitimer "setitimer";
    GETPID = SYS_getpid "getpid";
    SENDFILE = SYS_sendfile "sendfile";
    SOCKET = SYS_socket "socket";
    CONNECT = SYS_connect "connect";
    ACCEPT = SYS_accept "accept";
    SENDTO = SYS_sendto "sendto";
    RECVFROM = SYS_recvfrom "recvfrom";
    SENDMSG = SYS_sendmsg "sendmsg";
    RECVMSG = SYS_recvmsg "recvmsg";
    SHUTDOWN = SYS_shutdown "shutdown";
    BIND = SYS_bind "bind";
    LISTEN = SYS_listen "listen";
    GETSOCKNAME = SYS_getsockname "getsockname";
    GETPEERNAME = SYS_getpeername "getpeername";
    SOCKETPAIR = SYS_socketpair "socketpair";
    SETSOCKOPT = SYS_setsockopt "setsockopt";
    GETSOCKOPT = SYS_getsockopt "getsockopt";
    CLONE = SYS_clone "clone";
    FORK = SYS_fork "fork";
    VFORK = SYS_vfork "vfork";
    EXECVE = SYS_execve "execve";
    EXIT = SYS_exit "exit";
    WAIT4 = SYS_wait4 "wait4";
    KILL = SYS_kill "kill";
    UNAME = SYS_uname "uname";
    SEMGET = SYS_semget "semget";
    SEMOP = SYS_semop "semop";
    SEMCTL = SYS_semctl "semctl";
    SHMDT = SYS_shmdt "shmdt";
    MSGGET = SYS_msgget "msgget";
    MSGSND = SYS_msgsnd "msgsnd";
    MSGRCV = SYS_msgrcv "msgrcv";
    MSGCTL = SYS_msgctl "msgctl";
    FCNTL = SYS_fcntl "fcntl";
    FLOCK = SYS_flock "flock";
    FSYNC = SYS_fsync "fsync";
    FDATASYNC = SYS_fdatasync "fdatasync";
    TRUNCATE = SYS_truncate "truncate";
    FTRUNCATE = SYS_ftruncate "ftruncate";
    GETDENTS = SYS_getdents "getdents";
    GETCWD = SYS_getcwd "getcwd";
    CHDIR = SYS_chdir "chdir";
    FCHDIR = SYS_fchdir "fchdir";
    RENAME = SYS_rename "rename";
    MKDIR = SYS_mkdir "mkdir";
    RMDIR = SYS_rmdir "rmdir";
    CREAT = SYS_creat "creat";
    LINK = SYS_link "link";
    UNLINK = SYS_unlink "unlink";
    SYMLINK = SYS_symlink "symlink";
    READLINK = SYS_readlink "readlink";
    CHMOD = SYS_chmod "chmod";
    FCHMOD = SYS_fchmod "fchmod";
    CHOWN = SYS_chown "chown";
    FCHOWN = SYS_fchown "fchown";
    LCHOWN = SYS_lchown "lchown";
    UMASK = SYS_umask "umask";
    GETTIMEOFDAY = SYS_gettimeofday "gettimeofday";
    GETRLIMIT = SYS_getrlimit "getrlimit";
    GETRUSAGE = SYS_getrusage "getrusage";
    SYSINFO = SYS_sysinfo "sysinfo";
    TIMES = SYS_times "times";
    PTRACE = SYS_ptrace "ptrace";
    GETUID = SYS_getuid "getuid";
    SYSLOG = SYS_syslog "syslog";
    GETGID = SYS_getgid "getgid";
    SETUID = SYS_setuid "setuid";
    SETGID = SYS_setgid "setgid";
    GETEUID = SYS_geteuid "geteuid";
    GETEGID = SYS_getegid "getegid";
    SETPGID = SYS_setpgid "setpgid";
    GETPPID = SYS_getppid "getppid";
    GETPGRP = SYS_getpgrp "getpgrp";
    SETSID = SYS_setsid "setsid";
    SETREUID = SYS_setreuid "setreuid";
    SETREGID = SYS_setregid "setregid";
    GETGROUPS = SYS_getgroups "getgroups";
    SETGROUPS = SYS_setgroups "setgroups";
    SETRESUID = SYS_setresuid "setresuid";
    GETRESUID = SYS_getresuid "getresuid";
    SETRESGID = SYS_setresgid "setresgid";
    GETRESGID = SYS_getresgid "getresgid";
    GETPGID = SYS_getpgid "getpgid";
    SETFSUID = SYS_setfsuid "setfsuid";
    SETFSGID = SYS_setfsgid "setfsgid";
    GETSID = SYS_getsid "getsid";
    CAPGET = SYS_capget "capget";
    CAPSET = SYS_capset "capset";
    RT_SIGPENDING = SYS_rt_sigpending "rt_sigpending";
    RT_SIGTIMEDWAIT = SYS_rt_sigtimedwait "rt_sigtimedwait";
    RT_SIGQUEUEINFO = SYS_rt_sigqueueinfo "rt_sigqueueinfo";
    RT_SIGSUSPEND = SYS_rt_sigsuspend "rt_sigsuspend";
    SIGALTSTACK = SYS_sigaltstack "sigaltstack";
    UTIME = SYS_utime "utime";
    MKNOD = SYS_mknod "mknod";
    USELIB = SYS_uselib "uselib";
    PERSONALITY = SYS_personality "personality";
    USTAT = SYS_ustat "ustat";
    STATFS = SYS_statfs "statfs";
    FSTATFS = SYS_fstatfs "fstatfs";
    SYSFS = SYS_sysfs "sysfs";
    GETPRIORITY = SYS_getpriority "getpriority";
    SETPRIORITY = SYS_setpriority "setpriority";
    SCHED_SETPARAM = SYS_sched_setparam "sched_setparam";
    SCHED_GETPARAM = SYS_sched_getparam "sched_getparam";
    SCHED_SETSCHEDULER = SYS_sched_setscheduler "sched_setscheduler";
    SCHED_GETSCHEDULER = SYS_sched_getscheduler "sched_getscheduler";
    SCHED_GET_PRIORITY_MAX = SYS_sched_get_priority_max "sched_get_priority_max";
    SCHED_GET_PRIORITY_MIN = SYS_sched_get_priority_min "sched_get_priority_min";
    SCHED_RR_GET_INTERVAL = SYS_sched_rr_get_interval "sched_rr_get_interval";
    MLOCK = SYS_mlock "mlock";
    MUNLOCK = SYS_munlock "munlock";
    MLOCKALL = SYS_mlockall "mlockall";
    MUNLOCKALL = SYS_munlockall "munlockall";
    VHANGUP = SYS_vhangup "vhangup";
    MODIFY_LDT = SYS_modify_ldt "modify_ldt";
    PIVOT_ROOT = SYS_pivot_root "pivot_root";
    _SYSCTL = SYS__sysctl "_sysctl";
    PRCTL = SYS_prctl "prctl";
    ARCH_PRCTL = SYS_arch_prctl "arch_prctl";
    ADJTIMEX = SYS_adjtimex "adjtimex";
    SETRLIMIT = SYS_setrlimit "setrlimit";
    CHROOT = SYS_chroot "chroot";
    SYNC = SYS_sync "sync";
    ACCT = SYS_acct "acct";
    SETTIMEOFDAY = SYS_settimeofday "settimeofday";
    MOUNT = SYS_mount "mount";
    UMOUNT2 = SYS_umount2 "umount2";
    SWAPON = SYS_swapon "swapon";
    SWAPOFF = SYS_swapoff "swapoff";
    REBOOT = SYS_reboot "reboot";
    SETHOSTNAME = SYS_sethostname "sethostname";
    SETDOMAINNAME = SYS_setdomainname "setdomainname";
    IOPL = SYS_iopl "iopl";
    IOPERM = SYS_ioperm "ioperm";
    INIT_MODULE = SYS_init_module "init_module";
    DELETE_MODULE = SYS_delete_module "delete_module";
    QUOTACTL = SYS_quotactl "quotactl";
    NFSSERVCTL = SYS_nfsservctl "nfsservctl";
    GETPMSG = SYS_getpmsg "getpmsg";
    PUTPMSG = SYS_putpmsg "putpmsg";
    AFS_SYSCALL = SYS_afs_syscall "afs_syscall";
    TUXCALL = SYS_tuxcall "tuxcall";
    SECURITY = SYS_security "security";
    GETTID = SYS_gettid "gettid";
    READAHEAD = SYS_readahead "readahead";
    SETXATTR = SYS_setxattr "setxattr";
    LSETXATTR = SYS_lsetxattr "lsetxattr";
    FSETXATTR = SYS_fsetxattr "fsetxattr";
    GETXATTR = SYS_getxattr "getxattr";
    LGETXATTR = SYS_lgetxattr "lgetxattr";
    FGETXATTR = SYS_fgetxattr "fgetxattr";
    LISTXATTR = SYS_listxattr "listxattr";
    LLISTXATTR = SYS_llistxattr "llistxattr";
    FLISTXATTR = SYS_flistxattr "flistxattr";
    REMOVEXATTR = SYS_removexattr "removexattr";
    LREMOVEXATTR = SYS_lremovexattr "lremovexattr";
    FREMOVEXATTR = SYS_fremovexattr "fremovexattr";
    TKILL = SYS_tkill "tkill";
    TIME = SYS_time "time";
    FUTEX = SYS_futex "futex";
    SCHED_SETAFFINITY = SYS_sched_setaffinity "sched_setaffinity";
    SCHED_GETAFFINITY = SYS_sched_getaffinity "sched_getaffinity";
    SET_THREAD_AREA = SYS_set_thread_area "set_thread_area";
    IO_SETUP = SYS_io_setup "io_setup";
    IO_DESTROY = SYS_io_destroy "io_destroy";
    IO_GETEVENTS = SYS_io_getevents "io_getevents";
    IO_SUBMIT = SYS_io_submit "io_submit";
    IO_CANCEL = SYS_io_cancel "io_cancel";
    GET_THREAD_AREA = SYS_get_thread_area "get_thread_area";
    LOOKUP_DCOOKIE = SYS_lookup_dcookie "lookup_dcookie";
    EPOLL_CREATE = SYS_epoll_create "epoll_create";
    EPOLL_CTL_OLD = SYS_epoll_ctl_old "epoll_ctl_old";
    EPOLL_WAIT_OLD = SYS_epoll_wait_old "epoll_wait_old";
    REMAP_FILE_PAGES = SYS_remap_file_pages "remap_file_pages";
    GETDENTS64 = SYS_getdents64 "getdents64";
    SET_TID_ADDRESS = SYS_set_tid_address "set_tid_address";
    RESTART_SYSCALL = SYS_restart_syscall "restart_syscall";
    SEMTIMEDOP = SYS_semtimedop "semtimedop";
    FADVISE64 = SYS_fadvise64 "fadvise64";
    TIMER_CREATE = SYS_timer_create "timer_create";
    TIMER_SETTIME = SYS_timer_settime "timer_settime";
    TIMER_GETTIME = SYS_timer_gettime "timer_gettime";
    TIMER_GETOVERRUN = SYS_timer_getoverrun "timer_getoverrun";
    TIMER_DELETE = SYS_timer_delete "timer_delete";
    CLOCK_SETTIME = SYS_clock_settime "clock_settime";
    CLOCK_GETTIME = SYS_clock_gettime "clock_gettime";
    CLOCK_GETRES = SYS_clock_getres "clock_getres";
    CLOCK_NANOSLEEP = SYS_clock_nanosleep "clock_nanosleep";
    EXIT_GROUP = SYS_exit_group "exit_group";
    EPOLL_WAIT = SYS_epoll_wait "epoll_wait";
    EPOLL_CTL = SYS_epoll_ctl "epoll_ctl";
    TGKILL = SYS_tgkill "tgkill";
    UTIMES = SYS_utimes "utimes";
    VSERVER = SYS_vserver "vserver";
    MBIND = SYS_mbind "mbind";
    SET_MEMPOLICY = SYS_set_mempolicy "set_mempolicy";
    GET_MEMPOLICY = SYS_get_mempolicy "get_mempolicy";
    MQ_OPEN = SYS_mq_open "mq_open";
    MQ_UNLINK = SYS_mq_unlink "mq_unlink";
    MQ_TIMEDSEND = SYS_mq_timedsend "mq_timedsend";
    MQ_TIMEDRECEIVE = SYS_mq_timedreceive "mq_timedreceive";
    MQ_NOTIFY = SYS_mq_notify "mq_notify";
    MQ_GETSETATTR = SYS_mq_getsetattr "mq_getsetattr";
    KEXEC_LOAD = SYS_kexec_load "kexec_load";
    WAITID = SYS_waitid "waitid";
    ADD_KEY = SYS_add_key "add_key";
    REQUEST_KEY = SYS_request_key "request_key";
    KEYCTL = SYS_keyctl "keyctl";
    IOPRIO_SET = SYS_ioprio_set "ioprio_set";
    IOPRIO_GET = SYS_ioprio_get "ioprio_get";
    INOTIFY_INIT = SYS_inotify_init "inotify_init";
    INOTIFY_ADD_WATCH = SYS_inotify_add_watch "inotify_add_watch";
    INOTIFY_RM_WATCH = SYS_inotify_rm_watch "inotify_rm_watch";
    MIGRATE_PAGES = SYS_migrate_pages "migrate_pages";
    OPENAT = SYS_openat "openat";
    MKDIRAT = SYS_mkdirat "mkdirat";
    MKNODAT = SYS_mknodat "mknodat";
    FCHOWNAT = SYS_fchownat "fchownat";
    FUTIMESAT = SYS_futimesat "futimesat";
    NEWFSTATAT = SYS_newfstatat "newfstatat";
    UNLINKAT = SYS_unlinkat "unlinkat";
    RENAMEAT = SYS_renameat "renameat";
    LINKAT = SYS_linkat "linkat";
    SYMLINKAT = SYS_symlinkat "symlinkat";
    READLINKAT = SYS_readlinkat "readlinkat";
    FCHMODAT = SYS_fchmodat "fchmodat";
    FACCESSAT = SYS_faccessat "faccessat";
    PSELECT6 = SYS_pselect6 "pselect6";
    PPOLL = SYS_ppoll "ppoll";
    UNSHARE = SYS_unshare "unshare";
    SET_ROBUST_LIST = SYS_set_robust_list "set_robust_list";
    GET_ROBUST_LIST = SYS_get_robust_list "get_robust_list";
    SPLICE = SYS_splice "splice";
    TEE = SYS_tee "tee";
    SYNC_FILE_RANGE = SYS_sync_file_range "sync_file_range";
    VMSPLICE = SYS_vmsplice "vmsplice";
    MOVE_PAGES = SYS_move_pages "move_pages";
    UTIMENSAT = SYS_utimensat "utimensat";
    EPOLL_PWAIT = SYS_epoll_pwait "epoll_pwait";
    SIGNALFD = SYS_signalfd "signalfd";
    TIMERFD_CREATE = SYS_timerfd_create "timerfd_create";
    EVENTFD = SYS_eventfd "eventfd";
    FALLOCATE = SYS_fallocate "fallocate";
    TIMERFD_SETTIME = SYS_timerfd_settime "timerfd_settime";
    TIMERFD_GETTIME = SYS_timerfd_gettime "timerfd_gettime";
    ACCEPT4 = SYS_accept4 "accept4";
    SIGNALFD4 = SYS_signalfd4 "signalfd4";
    EVENTFD2 = SYS_eventfd2 "eventfd2";
    EPOLL_CREATE1 = SYS_epoll_create1 "epoll_create1";
    DUP3 = SYS_dup3 "dup3";
    PIPE2 = SYS_pipe2 "pipe2";
    INOTIFY_INIT1 = SYS_inotify_init1 "inotify_init1";
    PREADV = SYS_preadv "preadv";
    PWRITEV = SYS_pwritev "pwritev";
    RT_TGSIGQUEUEINFO = SYS_rt_tgsigqueueinfo "rt_tgsigqueueinfo";
    PERF_EVENT_OPEN = SYS_perf_event_open "perf_event_open";
    RECVMMSG = SYS_recvmmsg "recvmmsg";
    FANOTIFY_INIT = SYS_fanotify_init "fanotify_init";
    FANOTIFY_MARK = SYS_fanotify_mark "fanotify_mark";
    PRLIMIT64 = SYS_prlimit64 "prlimit64";
    NAME_TO_HANDLE_AT = SYS_name_to_handle_at "name_to_handle_at";
    OPEN_BY_HANDLE_AT = SYS_open_by_handle_at "open_by_handle_at";
    CLOCK_ADJTIME = SYS_clock_adjtime "clock_adjtime";
    SYNCFS = SYS_syncfs "syncfs";
    SENDMMSG = SYS_sendmmsg "sendmmsg";
    SETNS = SYS_setns "setns";
    GETCPU = SYS_getcpu "getcpu";
    PROCESS_VM_READV = SYS_process_vm_readv "process_vm_readv";
    PROCESS_VM_WRITEV = SYS_process_vm_writev "process_vm_writev";
    KCMP = SYS_kcmp "kcmp";
    FINIT_MODULE = SYS_finit_module "finit_module";
    SCHED_SETATTR = SYS_sched_setattr "sched_setattr";
    SCHED_GETATTR = SYS_sched_getattr "sched_getattr";
    RENAMEAT2 = SYS_renameat2 "renameat2";
    SECCOMP = SYS_seccomp "seccomp";
    GETRANDOM = SYS_getrandom "getrandom";
    MEMFD_CREATE = SYS_memfd_create "memfd_create";
    KEXEC_FILE_LOAD = SYS_kexec_file_load "kexec_file_load";
    BPF = SYS_bpf "bpf";
    EXECVEAT = SYS_execveat "execveat";
    USERFAULTFD = SYS_userfaultfd "userfaultfd";
    MEMBARRIER = SYS_membarrier "membarrier";
    MLOCK2 = SYS_mlock2 "mlock2";
    COPY_FILE_RANGE = SYS_copy_file_range "copy_file_range";
    PREADV2 = SYS_preadv2 "preadv2";
    PWRITEV2 = SYS_pwritev2 "pwritev2";
    PKEY_MPROTECT = SYS_pkey_mprotect "pkey_mprotect";
    PKEY_ALLOC = SYS_pkey_alloc "pkey_alloc";
    PKEY_FREE = SYS_pkey_free "pkey_free";
    STATX = SYS_statx "statx";
    RSEQ = SYS_rseq "rseq";
    PIDFD_SEND_SIGNAL = SYS_pidfd_send_signal "pidfd_send_signal";
    IO_URING_SETUP = SYS_io_uring_setup "io_uring_setup";
    IO_URING_ENTER = SYS_io_uring_enter "io_uring_enter";
    IO_URING_REGISTER = SYS_io_uring_register "io_uring_register";
    OPEN_TREE = SYS_open_tree "open_tree";
    MOVE_MOUNT = SYS_move_mount "move_mount";
    FSOPEN = SYS_fsopen "fsopen";
    FSCONFIG = SYS_fsconfig "fsconfig";
    FSMOUNT = SYS_fsmount "fsmount";
    FSPICK = SYS_fspick "fspick";
    PIDFD_OPEN = SYS_pidfd_open "pidfd_open";
    CLONE3 = SYS_clone3 "clone3";
    CLOSE_RANGE = SYS_close_range "close_range";
    OPENAT2 = SYS_openat2 "openat2";
    PIDFD_GETFD = SYS_pidfd_getfd "pidfd_getfd";
    FACCESSAT2 = SYS_faccessat2 "faccessat2";
    PROCESS_MADVISE = SYS_process_madvise "process_madvise";
    EPOLL_PWAIT2 = SYS_epoll_pwait2 "epoll_pwait2";
    MOUNT_SETATTR = SYS_mount_setattr "mount_setattr";
    QUOTACTL_FD = SYS_quotactl_fd "quotactl_fd";
    LANDLOCK_CREATE_RULESET = SYS_landlock_create_ruleset "landlock_create_ruleset";
    LANDLOCK_ADD_RULE = SYS_landlock_add_rule "landlock_add_rule";
    LANDLOCK_RESTRICT_SELF = SYS_landlock_restrict_self "landlock_restrict_self";
    MEMFD_SECRET = SYS_memfd_secret "memfd_secret";
    PROCESS_MRELEASE = SYS_process_mrelease "process_mrelease";
    FUTEX_WAITV = SYS_futex_waitv "futex_waitv";
    SET_MEMPOLICY_HOME_NODE = SYS_set_mempolicy_home_node "set_mempolicy_home_node";
    FCHMODAT2 = SYS_fchmodat2 "fchmodat2";
    MSEAL = SYS_mseal "mseal";
}

fn entry(nr: i64) -> Option<&'static Entry> {
    TABLE
        .binary_search_by_key(&nr, |e| e.nr)
        .ok()
        .and_then(|i| TABLE.get(i))
}

/// The kernel's name for a syscall number (every number libc defines).
pub fn kernel_name(nr: i64) -> Option<&'static str> {
    entry(nr).map(|e| e.name)
}

/// The name the thread header, the summary table and JSON `syscall.name`
/// show: the kernel's, for every call (one table, one name).
pub fn name(nr: i64) -> Option<&'static str> {
    kernel_name(nr)
}

/// What a ptrace stop (`PTRACE_INTERRUPT`, or any stop) does to a thread
/// blocked in a call.
///
/// A stop wakes the sleeping thread as a signal does. When no handler runs,
/// the kernel restarts calls that returned one of its internal restart codes
/// (`ERESTARTSYS`, `ERESTARTNOHAND`, `ERESTART_RESTARTBLOCK`: futex, poll,
/// nanosleep, read on a pipe, msgrcv, ...), and the program never notices.
/// A few calls return plain `EINTR` instead (signal(7), "Interruption of
/// system calls and library functions by stop signals"), and a program that
/// treats `EINTR` as fatal dies of being looked at. lockdump does not stop
/// threads blocked in those. Checked on Linux 6.18 by
/// `fixtures/c/eintr_calls.c` (one thread per call; `LOCKDUMP_EINTR_PROBE=1`
/// lists the calls a stop interrupts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Restarted by the kernel, or not a blocking wait: stopping is harmless.
    Restarted,
    /// Fails with `EINTR`: epoll waits, `sigtimedwait`/`sigwaitinfo`,
    /// `semop`/`semtimedop`, `io_getevents`.
    Interrupted,
    /// A socket call: fails with `EINTR` if the socket has a receive or send
    /// timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`; the kernel's `sock_intr_errno`).
    /// Another process cannot see that timeout, so lockdump assumes it.
    InterruptedIfSocketTimeout,
    /// `read`/`write`/`readv`/`writev`: as [`OnStop::InterruptedIfSocketTimeout`]
    /// when the descriptor (first argument) is a socket; a `write` of more
    /// than `PIPE_BUF` bytes or a `writev` to a pipe or FIFO returns what it
    /// has written so far (a short count, not EINTR); else restarted. The
    /// caller looks at the descriptor (`/proc/PID/fd/N`).
    InterruptedIfOnSocket,
}

/// [`OnStop`] of syscall `nr` (its number as `/proc/TID/syscall` or
/// `orig_rax` give it). `restart_syscall` (an interrupted timed wait that a
/// stop already restarted) is restarted again.
///
/// Not covered: `io_pgetevents` (333, which fails like `io_getevents`; the
/// libc crate has no x86_64 constant for it, so it is not in the table) and
/// reads of device files whose drivers return `EINTR` (see docs/limits.md).
pub fn on_stop(nr: i64) -> OnStop {
    match nr {
        nr::EPOLL_WAIT
        | nr::EPOLL_PWAIT
        | nr::EPOLL_PWAIT2
        | nr::RT_SIGTIMEDWAIT
        | nr::SEMOP
        | nr::SEMTIMEDOP
        | nr::IO_GETEVENTS => OnStop::Interrupted,
        nr::ACCEPT
        | nr::ACCEPT4
        | nr::CONNECT
        | nr::RECVFROM
        | nr::RECVMSG
        | nr::RECVMMSG
        | nr::SENDTO
        | nr::SENDMSG
        | nr::SENDMMSG => OnStop::InterruptedIfSocketTimeout,
        nr::READ | nr::WRITE | nr::READV | nr::WRITEV => OnStop::InterruptedIfOnSocket,
        _ => OnStop::Restarted,
    }
}

/// futex operation names (low 7 bits of the op argument).
pub fn futex_op_name(op: u64) -> String {
    let base = match op & 0x7f {
        0 => "FUTEX_WAIT",
        1 => "FUTEX_WAKE",
        5 => "FUTEX_WAKE_OP",
        6 => "FUTEX_LOCK_PI",
        7 => "FUTEX_UNLOCK_PI",
        8 => "FUTEX_TRYLOCK_PI",
        9 => "FUTEX_WAIT_BITSET",
        10 => "FUTEX_WAKE_BITSET",
        11 => "FUTEX_WAIT_REQUEUE_PI",
        12 => "FUTEX_CMP_REQUEUE_PI",
        13 => "FUTEX_LOCK_PI2",
        other => return format!("{op:#x} (op {other})"),
    };
    let mut s = base.to_string();
    if op & 128 != 0 {
        s.push_str("_PRIVATE");
    }
    if op & 256 != 0 {
        s.push_str("|FUTEX_CLOCK_REALTIME");
    }
    s
}

/// The one rendering of a futex call (header, JSON, `blocked_in`, evidence):
/// `futex(0x.., FUTEX_WAIT_PRIVATE, 2)`; the value in hex when it carries
/// flags (0x80000010), left out for the PI-lock operations, which ignore it.
pub fn futex_text(addr: u64, op: u64, val: u32) -> String {
    let name = futex_op_name(op);
    match op & 0x7f {
        6 | 7 | 8 | 13 => format!("futex({addr:#x}, {name})"),
        _ if val >= 0x1_0000 => format!("futex({addr:#x}, {name}, {val:#x})"),
        _ => format!("futex({addr:#x}, {name}, {val})"),
    }
}

/// `fcntl` commands that wait for a record lock.
pub const F_SETLKW: u64 = 7;
pub const F_OFD_SETLKW: u64 = 38;

/// The system call a thread was blocked in when it was stopped (decoded
/// from its registers by the capture, `crate::capture::stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallState {
    /// Syscall number as the kernel reported it (`orig_rax`).
    pub nr: i64,
    /// The six argument registers (rdi, rsi, rdx, r10, r8, r9).
    pub args: [u64; 6],
    /// The thread is in `restart_syscall` (219): a timed wait interrupted by an
    /// earlier stop. The original number is gone; the argument registers still
    /// hold the original arguments.
    pub restarted: bool,
    /// The thread was stopped at its `syscall` instruction with the number in
    /// `rax`, about to enter the call rather than inside it: resumed by an
    /// earlier stop (the kernel rewinds an interrupted call to re-execute
    /// it, so a thread a previous dump — or debugger — just let go is
    /// caught here until it gets a CPU), or preempted just before the call.
    /// It is in the call the moment it runs; a futex wait counts only if
    /// its word still holds the expected value (else it would return at once).
    pub entering: bool,
}

/// The one rendering of a call and its arguments, used by the thread header,
/// the summary table (through [`crate::runtimes::syscalls::describe`], which
/// only adds what the call waits for), `syscall.text` and `blocked_in` in the
/// JSON: `futex(0x5638dbdb2060, FUTEX_WAIT_PRIVATE, 2)`, `sendto(fd 7)`,
/// `ppoll(2 fds)`, `clock_nanosleep`, or by default the name and the first
/// three arguments in hex. Every number libc defines is named; an unknown
/// number shows as `syscall N(...)`.
pub fn describe(sys: &SyscallState) -> String {
    let a = &sys.args;
    if sys.nr == nr::FUTEX {
        return futex_text(a[0], a[1], a[2] as u32);
    }
    if sys.restarted || sys.nr == nr::RESTART_SYSCALL {
        return "restart_syscall() (an interrupted timed wait)".to_string();
    }
    let Some(name) = kernel_name(sys.nr) else {
        return format!("syscall {}({:#x}, {:#x}, {:#x})", sys.nr, a[0], a[1], a[2]);
    };
    let fd = a[0] as i64 as i32;
    match sys.nr {
        nr::FCNTL if a[1] == F_SETLKW || a[1] == F_OFD_SETLKW => format!("{name}(fd {fd}, F_SETLKW)"),
        nr::FCNTL => format!("{name}(fd {fd}, cmd {})", a[1]),
        n if takes_fd_first(n) => format!("{name}(fd {fd})"),
        nr::POLL | nr::PPOLL => format!("{name}({} fds)", a[1]),
        nr::FUTEX_WAITV => format!("{name}({} futexes)", a[1]),
        nr::WAIT4 => format!("{name}(pid {fd})"),
        nr::WAITID => format!("{name}(id {})", a[1] as i64 as i32),
        nr::SEMOP | nr::SEMTIMEDOP => format!("{name}(semid {fd})"),
        nr::MSGSND | nr::MSGRCV => format!("{name}(msqid {fd})"),
        nr::MQ_TIMEDRECEIVE | nr::MQ_TIMEDSEND => format!("{name}(mqd {fd})"),
        nr::SELECT
        | nr::PSELECT6
        | nr::PAUSE
        | nr::NANOSLEEP
        | nr::CLOCK_NANOSLEEP
        | nr::RT_SIGSUSPEND
        | nr::RT_SIGTIMEDWAIT
        | nr::SCHED_YIELD => name.to_string(),
        _ => format!("{name}({:#x}, {:#x}, {:#x})", a[0], a[1], a[2]),
    }
}

/// Calls whose first argument is the file descriptor they work on (and,
/// when they block, wait on).
fn takes_fd_first(n: i64) -> bool {
    matches!(
        n,
        nr::READ
            | nr::WRITE
            | nr::CLOSE
            | nr::FSTAT
            | nr::LSEEK
            | nr::IOCTL
            | nr::PREAD64
            | nr::PWRITE64
            | nr::READV
            | nr::WRITEV
            | nr::PREADV
            | nr::PWRITEV
            | nr::PREADV2
            | nr::PWRITEV2
            | nr::SENDFILE
            | nr::CONNECT
            | nr::ACCEPT
            | nr::ACCEPT4
            | nr::SENDTO
            | nr::RECVFROM
            | nr::SENDMSG
            | nr::RECVMSG
            | nr::SENDMMSG
            | nr::RECVMMSG
            | nr::SHUTDOWN
            | nr::BIND
            | nr::LISTEN
            | nr::FLOCK
            | nr::FSYNC
            | nr::FDATASYNC
            | nr::FTRUNCATE
            | nr::FALLOCATE
            | nr::SYNC_FILE_RANGE
            | nr::GETDENTS64
            | nr::SPLICE
            | nr::TEE
            | nr::IO_URING_ENTER
            | nr::EPOLL_WAIT
            | nr::EPOLL_PWAIT
            | nr::EPOLL_PWAIT2
    )
}

/// The fd a thread's call waits on, for the calls [`describe`] shows as
/// `name(fd N)` (and `fcntl`'s record locks).
pub fn waited_fd(sys: &SyscallState) -> Option<i32> {
    (!sys.restarted && (takes_fd_first(sys.nr) || sys.nr == nr::FCNTL)).then_some(sys.args[0] as i64 as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(nr: i64, args: [u64; 6]) -> SyscallState {
        SyscallState {
            nr,
            args,
            restarted: false,
            entering: false,
        }
    }

    #[test]
    fn table_is_sorted_and_named_like_libc() {
        assert!(TABLE.windows(2).all(|w| w[0].nr < w[1].nr));
        assert_eq!(TABLE.len(), SOURCES.len());
        for (e, src) in TABLE.iter().zip(SOURCES) {
            assert_eq!(format!("SYS_{}", e.name), *src);
        }
        assert_eq!(nr::FUTEX, 202);
        assert_eq!(kernel_name(42), Some("connect"));
        assert_eq!(name(42), Some("connect"));
        assert_eq!(name(44), Some("sendto"));
        assert_eq!(name(17), Some("pread64"));
        assert_eq!(kernel_name(39), Some("getpid"));
        assert_eq!(kernel_name(174), None); // create_module: gone from the kernel
    }

    /// Every number from 0 to 450 that the libc crate defines for x86_64 has
    /// its name in the table, in the header and in JSON `syscall.name`.
    #[test]
    fn every_libc_number_up_to_450_is_named() {
        let mut defined = 0;
        for nr in 0..=450i64 {
            let Some(src) = SOURCES.iter().zip(TABLE).find(|(_, e)| e.nr == nr).map(|(s, _)| *s) else {
                continue;
            };
            defined += 1;
            let name = name(nr).unwrap_or_else(|| panic!("{nr} unnamed"));
            assert_eq!(format!("SYS_{name}"), src);
            let text = describe(&sys(nr, [7, 2, 3, 0, 0, 0]));
            assert!(!text.starts_with("syscall "), "{nr}: {text}");
            assert!(text.starts_with(name), "{nr}: {text}");
        }
        // libc 0.2.191 defines 0..=334 but 174, 177, 178 (retired) and 333
        // (io_pgetevents, missing from libc), and 424..=450.
        assert_eq!(defined, 358);
    }

    #[test]
    fn calls_a_stop_interrupts() {
        // The calls fixtures/c/eintr_calls.c saw fail with EINTR after one
        // stopping capture (Linux 6.18), and controls it saw restarted.
        for nr in [232, 281, 441, 128, 220, 65, 208] {
            assert_eq!(on_stop(nr), OnStop::Interrupted, "{:?}", kernel_name(nr));
        }
        for nr in [43, 45, 44, 42] {
            assert_eq!(on_stop(nr), OnStop::InterruptedIfSocketTimeout, "{:?}", kernel_name(nr));
        }
        assert_eq!(on_stop(0), OnStop::InterruptedIfOnSocket);
        for nr in [202, 230, 35, 7, 70, 219, 34, 61] {
            assert_eq!(on_stop(nr), OnStop::Restarted, "{:?}", kernel_name(nr));
        }
    }

    #[test]
    fn futex_rendering() {
        let s = sys(202, [0x5638dbdb2060, 0x80, 2, 0, 0, 0]);
        assert_eq!(describe(&s), "futex(0x5638dbdb2060, FUTEX_WAIT_PRIVATE, 2)");
        assert_eq!(futex_op_name(393), "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME");
        assert_eq!(futex_op_name(134), "FUTEX_LOCK_PI_PRIVATE");
        assert_eq!(describe(&sys(0, [3, 0, 0, 0, 0, 0])), "read(fd 3)");
    }

    #[test]
    fn header_rendering_of_other_calls() {
        let a = [3, 2, 0x10, 0, 0, 0];
        assert_eq!(describe(&sys(232, a)), "epoll_wait(fd 3)");
        assert_eq!(describe(&sys(271, a)), "ppoll(2 fds)");
        assert_eq!(describe(&sys(61, a)), "wait4(pid 3)");
        assert_eq!(describe(&sys(230, a)), "clock_nanosleep");
        assert_eq!(describe(&sys(17, a)), "pread64(fd 3)");
        assert_eq!(describe(&sys(42, a)), "connect(fd 3)");
        assert_eq!(describe(&sys(44, [7, 0x10, 0x20, 0, 0, 0])), "sendto(fd 7)");
        assert_eq!(describe(&sys(72, [5, 7, 0, 0, 0, 0])), "fcntl(fd 5, F_SETLKW)");
        assert_eq!(describe(&sys(39, a)), "getpid(0x3, 0x2, 0x10)");
        assert_eq!(describe(&sys(333, a)), "syscall 333(0x3, 0x2, 0x10)");
        assert_eq!(describe(&sys(219, a)), "restart_syscall() (an interrupted timed wait)");
        let restarted = SyscallState {
            restarted: true,
            entering: false,
            ..sys(219, a)
        };
        assert_eq!(describe(&restarted), "restart_syscall() (an interrupted timed wait)");
    }
}
