# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_rlock_global_optspecs
    string join \n k/key= r/redis= redis-file= tls-ca= tls-cert= tls-key= tls-insecure prefix= t/ttl= limit= s/shared v/verbose q/quiet w/wait= E/conflict-exit-code= kill-signal= kill-after= max-time= min-hold= jitter= c/command= h/help V/version
end

function __fish_rlock_needs_command
    contains -- -- (commandline -opc)
    and return 1
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_rlock_global_optspecs) -- $cmd 2>/dev/null
    or return 0
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_rlock_using_subcommand
    set -l cmd (__fish_rlock_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c rlock -n "__fish_rlock_needs_command" -s k -l key -d 'The lock\'s name: non-empty UTF-8, at most 1024 bytes, no control characters' -r
complete -c rlock -n "__fish_rlock_needs_command" -s r -l redis -d 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum' -r
complete -c rlock -n "__fish_rlock_needs_command" -l redis-file -d 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others' -r -F
complete -c rlock -n "__fish_rlock_needs_command" -l tls-ca -d 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system\'s roots' -r -F
complete -c rlock -n "__fish_rlock_needs_command" -l tls-cert -d 'Client certificate (PEM) for mutual TLS; needs --tls-key' -r -F
complete -c rlock -n "__fish_rlock_needs_command" -l tls-key -d 'The client certificate\'s private key (PEM); needs --tls-cert' -r -F
complete -c rlock -n "__fish_rlock_needs_command" -l prefix -d 'Namespace for the lock\'s Redis keys' -r
complete -c rlock -n "__fish_rlock_needs_command" -s t -l ttl -d 'Lease time to live: how long the lock outlives an rlock that stops extending it' -r
complete -c rlock -n "__fish_rlock_needs_command" -l limit -d 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)' -r
complete -c rlock -n "__fish_rlock_needs_command" -s w -l wait -d 'How long to wait for a busy lock: a duration, or "forever"' -r
complete -c rlock -n "__fish_rlock_needs_command" -s E -l conflict-exit-code -d 'Exit status when the lock is busy' -r
complete -c rlock -n "__fish_rlock_needs_command" -l kill-signal -d 'The signal that stops the command when the lease cannot be kept (name or number)' -r -f -a "TERM\t''
INT\t''
HUP\t''
QUIT\t''
KILL\t''
USR1\t''
USR2\t''
ALRM\t''"
complete -c rlock -n "__fish_rlock_needs_command" -l kill-after -d 'Grace between --kill-signal and SIGKILL [default: 5s, or a quarter of the TTL if less]' -r
complete -c rlock -n "__fish_rlock_needs_command" -l max-time -d 'Stop the command if it runs longer than this (--kill-signal, then SIGKILL), exit 124' -r
complete -c rlock -n "__fish_rlock_needs_command" -l min-hold -d 'Keep the lock at least this long after the command started, even if it finishes sooner' -r
complete -c rlock -n "__fish_rlock_needs_command" -l jitter -d 'Sleep a random time in [0, DURATION) before the first attempt, to spread hosts apart' -r
complete -c rlock -n "__fish_rlock_needs_command" -s c -l command -d 'Run SHELL COMMAND with sh -c instead of COMMAND' -r
complete -c rlock -n "__fish_rlock_needs_command" -l tls-insecure -d 'Do not verify the servers\' certificates (for tests: anyone on the path can impersonate them)'
complete -c rlock -n "__fish_rlock_needs_command" -s s -l shared -d 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
complete -c rlock -n "__fish_rlock_needs_command" -s v -l verbose -d 'Say what happens on stderr: acquired, extended, released'
complete -c rlock -n "__fish_rlock_needs_command" -s q -l quiet -d 'Print no warnings (errors are always printed)'
complete -c rlock -n "__fish_rlock_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_needs_command" -s V -l version -d 'Print version'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "run" -d 'Run a command while holding the lock (what rlock alone does).'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "acquire" -d 'Take the lease and print it, for scripts that release it later (rlock release).'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "extend" -d 'Extend a lease you hold to a fresh TTL.'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "release" -d 'Release a lease you hold (compare-and-delete on every node), or break a stale lock (--force).'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "status" -d 'Show whether the lock is held, by whom, for how long, and the latest fence.'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "list" -d 'List the locks held under the prefix: mode, holder, since when, TTL left, latest fence.'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "completions" -d 'Print the completion script for a shell: bash, zsh, fish, elvish or powershell'
complete -c rlock -n "__fish_rlock_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rlock -n "__fish_rlock_using_subcommand run" -s k -l key -d 'The lock\'s name: non-empty UTF-8, at most 1024 bytes, no control characters' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -s r -l redis -d 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -l redis-file -d 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand run" -l tls-ca -d 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system\'s roots' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand run" -l tls-cert -d 'Client certificate (PEM) for mutual TLS; needs --tls-key' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand run" -l tls-key -d 'The client certificate\'s private key (PEM); needs --tls-cert' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand run" -l prefix -d 'Namespace for the lock\'s Redis keys' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -s t -l ttl -d 'Lease time to live: how long the lock outlives an rlock that stops extending it' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -l limit -d 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -s w -l wait -d 'How long to wait for a busy lock: a duration, or "forever"' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -s E -l conflict-exit-code -d 'Exit status when the lock is busy' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -l kill-signal -d 'The signal that stops the command when the lease cannot be kept (name or number)' -r -f -a "TERM\t''
INT\t''
HUP\t''
QUIT\t''
KILL\t''
USR1\t''
USR2\t''
ALRM\t''"
complete -c rlock -n "__fish_rlock_using_subcommand run" -l kill-after -d 'Grace between --kill-signal and SIGKILL [default: 5s, or a quarter of the TTL if less]' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -l max-time -d 'Stop the command if it runs longer than this (--kill-signal, then SIGKILL), exit 124' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -l min-hold -d 'Keep the lock at least this long after the command started, even if it finishes sooner' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -l jitter -d 'Sleep a random time in [0, DURATION) before the first attempt, to spread hosts apart' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -s c -l command -d 'Run SHELL COMMAND with sh -c instead of COMMAND' -r
complete -c rlock -n "__fish_rlock_using_subcommand run" -l tls-insecure -d 'Do not verify the servers\' certificates (for tests: anyone on the path can impersonate them)'
complete -c rlock -n "__fish_rlock_using_subcommand run" -s s -l shared -d 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
complete -c rlock -n "__fish_rlock_using_subcommand run" -s v -l verbose -d 'Say what happens on stderr: acquired, extended, released'
complete -c rlock -n "__fish_rlock_using_subcommand run" -s q -l quiet -d 'Print no warnings (errors are always printed)'
complete -c rlock -n "__fish_rlock_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s k -l key -d 'The lock\'s name: non-empty UTF-8, at most 1024 bytes, no control characters' -r
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s r -l redis -d 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum' -r
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l redis-file -d 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l tls-ca -d 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system\'s roots' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l tls-cert -d 'Client certificate (PEM) for mutual TLS; needs --tls-key' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l tls-key -d 'The client certificate\'s private key (PEM); needs --tls-cert' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l prefix -d 'Namespace for the lock\'s Redis keys' -r
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s t -l ttl -d 'Lease time to live: how long the lock outlives an rlock that stops extending it' -r
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l limit -d 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)' -r
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s w -l wait -d 'How long to wait for a busy lock: a duration, or "forever"' -r
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s E -l conflict-exit-code -d 'Exit status when the lock is busy' -r
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l format -d 'What to print on success' -r -f -a "plain\t'The token alone, on one line'
json\t'One JSON object: key, token, fence, ttl_ms, validity_ms, nodes'
shell\t'Export lines for eval: RLOCK_KEY, RLOCK_TOKEN, RLOCK_FENCE, RLOCK_REDIS and more'"
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -l tls-insecure -d 'Do not verify the servers\' certificates (for tests: anyone on the path can impersonate them)'
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s s -l shared -d 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s v -l verbose -d 'Say what happens on stderr: acquired, extended, released'
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s q -l quiet -d 'Print no warnings (errors are always printed)'
complete -c rlock -n "__fish_rlock_using_subcommand acquire" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_using_subcommand extend" -s k -l key -d 'The lock\'s name: non-empty UTF-8, at most 1024 bytes, no control characters' -r
complete -c rlock -n "__fish_rlock_using_subcommand extend" -s r -l redis -d 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum' -r
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l redis-file -d 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l tls-ca -d 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system\'s roots' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l tls-cert -d 'Client certificate (PEM) for mutual TLS; needs --tls-key' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l tls-key -d 'The client certificate\'s private key (PEM); needs --tls-cert' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l prefix -d 'Namespace for the lock\'s Redis keys' -r
complete -c rlock -n "__fish_rlock_using_subcommand extend" -s t -l ttl -d 'Lease time to live: how long the lock outlives an rlock that stops extending it' -r
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l limit -d 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)' -r
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l token -d 'The lease\'s token, as acquire printed it (rlock run sets RLOCK_TOKEN for its command, and so does eval of what acquire --format shell prints)' -r
complete -c rlock -n "__fish_rlock_using_subcommand extend" -l tls-insecure -d 'Do not verify the servers\' certificates (for tests: anyone on the path can impersonate them)'
complete -c rlock -n "__fish_rlock_using_subcommand extend" -s s -l shared -d 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
complete -c rlock -n "__fish_rlock_using_subcommand extend" -s v -l verbose -d 'Say what happens on stderr: acquired, extended, released'
complete -c rlock -n "__fish_rlock_using_subcommand extend" -s q -l quiet -d 'Print no warnings (errors are always printed)'
complete -c rlock -n "__fish_rlock_using_subcommand extend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_using_subcommand release" -s k -l key -d 'The lock\'s name: non-empty UTF-8, at most 1024 bytes, no control characters' -r
complete -c rlock -n "__fish_rlock_using_subcommand release" -s r -l redis -d 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum' -r
complete -c rlock -n "__fish_rlock_using_subcommand release" -l redis-file -d 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand release" -l tls-ca -d 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system\'s roots' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand release" -l tls-cert -d 'Client certificate (PEM) for mutual TLS; needs --tls-key' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand release" -l tls-key -d 'The client certificate\'s private key (PEM); needs --tls-cert' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand release" -l prefix -d 'Namespace for the lock\'s Redis keys' -r
complete -c rlock -n "__fish_rlock_using_subcommand release" -s t -l ttl -d 'Lease time to live: how long the lock outlives an rlock that stops extending it' -r
complete -c rlock -n "__fish_rlock_using_subcommand release" -l limit -d 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)' -r
complete -c rlock -n "__fish_rlock_using_subcommand release" -l token -d 'The lease\'s token, as acquire printed it (rlock run sets RLOCK_TOKEN for its command, and so does eval of what acquire --format shell prints)' -r
complete -c rlock -n "__fish_rlock_using_subcommand release" -l tls-insecure -d 'Do not verify the servers\' certificates (for tests: anyone on the path can impersonate them)'
complete -c rlock -n "__fish_rlock_using_subcommand release" -s s -l shared -d 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
complete -c rlock -n "__fish_rlock_using_subcommand release" -s v -l verbose -d 'Say what happens on stderr: acquired, extended, released'
complete -c rlock -n "__fish_rlock_using_subcommand release" -s q -l quiet -d 'Print no warnings (errors are always printed)'
complete -c rlock -n "__fish_rlock_using_subcommand release" -l force -d 'Break the lock: end every hold of it on every node, whatever its token (an operator\'s action for a stuck lock; the holder, if alive, is not told)'
complete -c rlock -n "__fish_rlock_using_subcommand release" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_using_subcommand status" -s k -l key -d 'The lock\'s name: non-empty UTF-8, at most 1024 bytes, no control characters' -r
complete -c rlock -n "__fish_rlock_using_subcommand status" -s r -l redis -d 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum' -r
complete -c rlock -n "__fish_rlock_using_subcommand status" -l redis-file -d 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand status" -l tls-ca -d 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system\'s roots' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand status" -l tls-cert -d 'Client certificate (PEM) for mutual TLS; needs --tls-key' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand status" -l tls-key -d 'The client certificate\'s private key (PEM); needs --tls-cert' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand status" -l prefix -d 'Namespace for the lock\'s Redis keys' -r
complete -c rlock -n "__fish_rlock_using_subcommand status" -s t -l ttl -d 'Lease time to live: how long the lock outlives an rlock that stops extending it' -r
complete -c rlock -n "__fish_rlock_using_subcommand status" -l limit -d 'Admit at most N holders at once (2 to 1000; 1 is the plain exclusive lock)' -r
complete -c rlock -n "__fish_rlock_using_subcommand status" -l token -d 'Your token, if you hold a lease: status then says whether the holder is you' -r
complete -c rlock -n "__fish_rlock_using_subcommand status" -l format -d 'How to print the state' -r -f -a "plain\t'Lines for people'
json\t'One JSON object'"
complete -c rlock -n "__fish_rlock_using_subcommand status" -l tls-insecure -d 'Do not verify the servers\' certificates (for tests: anyone on the path can impersonate them)'
complete -c rlock -n "__fish_rlock_using_subcommand status" -s s -l shared -d 'Take a shared hold: shared holders run together, an exclusive holder runs alone'
complete -c rlock -n "__fish_rlock_using_subcommand status" -s v -l verbose -d 'Say what happens on stderr: acquired, extended, released'
complete -c rlock -n "__fish_rlock_using_subcommand status" -s q -l quiet -d 'Print no warnings (errors are always printed)'
complete -c rlock -n "__fish_rlock_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_using_subcommand list" -s r -l redis -d 'Redis node URL; give it several times (or comma-separated) for a Redlock quorum' -r
complete -c rlock -n "__fish_rlock_using_subcommand list" -l redis-file -d 'Read the Redis URLs from FILE, one per line (# comments allowed); it must not be readable by group or others' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand list" -l tls-ca -d 'Trust the CAs in this PEM file for rediss:// nodes, instead of the system\'s roots' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand list" -l tls-cert -d 'Client certificate (PEM) for mutual TLS; needs --tls-key' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand list" -l tls-key -d 'The client certificate\'s private key (PEM); needs --tls-cert' -r -F
complete -c rlock -n "__fish_rlock_using_subcommand list" -l prefix -d 'Namespace for the lock\'s Redis keys' -r
complete -c rlock -n "__fish_rlock_using_subcommand list" -l format -d 'How to print the locks' -r -f -a "plain\t'Lines for people'
json\t'One JSON object'"
complete -c rlock -n "__fish_rlock_using_subcommand list" -l tls-insecure -d 'Do not verify the servers\' certificates (for tests: anyone on the path can impersonate them)'
complete -c rlock -n "__fish_rlock_using_subcommand list" -s q -l quiet -d 'Print no warnings (errors are always printed)'
complete -c rlock -n "__fish_rlock_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "run" -d 'Run a command while holding the lock (what rlock alone does).'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "acquire" -d 'Take the lease and print it, for scripts that release it later (rlock release).'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "extend" -d 'Extend a lease you hold to a fresh TTL.'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "release" -d 'Release a lease you hold (compare-and-delete on every node), or break a stale lock (--force).'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "status" -d 'Show whether the lock is held, by whom, for how long, and the latest fence.'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "list" -d 'List the locks held under the prefix: mode, holder, since when, TTL left, latest fence.'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "completions" -d 'Print the completion script for a shell: bash, zsh, fish, elvish or powershell'
complete -c rlock -n "__fish_rlock_using_subcommand help; and not __fish_seen_subcommand_from run acquire extend release status list completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

function __fish_rlock_command_after_dashes
    set -l words (commandline -opc) (commandline -ct)
    set -l at (contains -i -- -- $words)
    __fish_complete_subcommand --commandline $words[(math $at + 1)..-1]
end

complete -c rlock -n "contains -- -- (commandline -opc)" -x -a "(__fish_rlock_command_after_dashes)"
complete -c rlock -n "__fish_rlock_using_subcommand completions" -f -a "bash elvish fish powershell zsh"
