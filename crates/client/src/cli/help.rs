//! `help`: the usage text. Unlike the original, it needs no server.

/// What `help`, `-h`, `-help` and `--help` print on stdout, and what a bad command prints on
/// stderr after its error line.
pub const USAGE: &str = "\
DistKV Client - Command line interface for DistKV

Usage:
  distkv-client [options] <command> [args...]

Options (before the command; -name, -name=value, --name and --name=value all work):
  -server <address>          Server address, host:port (default: localhost:8080)
  -timeout <duration>        Connect and request timeout, e.g. 500ms, 5s, 1m (default: 5s)
  -consistency <level>       Consistency level: one, quorum, all (default: quorum)
  -o <format>                Output format: text, json (default: text)
  -v                         Report the connection on stderr

TLS Options:
  -tls-enabled               Enable TLS (default: false)
  -tls-ca-file <path>        CA certificate that signed the server's certificate
                             (default: the system's trusted roots)
  -tls-cert-file <path>      Client certificate (for mTLS)
  -tls-key-file <path>       Client private key (for mTLS)
  -tls-server-name <name>    Expected server name (default: localhost)
  -tls-insecure-skip-verify  Skip certificate verification (tests only)

Commands:
  put <key> <value>          Store a key-value pair
  get <key>                  Retrieve the value for a key (all versions if concurrent)
  delete <key>               Delete a key-value pair
  batch <k1> <v1> [<k2> <v2> ...]
                             Store multiple key-value pairs
  scan [--prefix P | --start A --end B] [--limit N]
                             List key-value pairs in key order
  status                     Show cluster status
  ring                       Show the hash ring and the N/R/W settings
  health                     Exit 0 when the node serves requests (its /ready endpoint)
  decommission               Stream the node's ranges to their next owners, then leave
  removenode <node>          Remove a dead node (id or address); re-replicate its ranges
  repair                     Compare Merkle trees with every replica now; fix differences
  rebalance                  Same as repair (the original's admin RPC)
  backup [<name>]            Write a consistent copy of the node's data to
                             <data-dir>/backups/<name> on the node (default name: UTC time)
  help                       Show this help message
  (decommission, removenode, repair and rebalance wait until done, showing progress on
   stderr; -timeout applies to connecting only)

Examples:
  distkv-client put user:123 \"John Doe\"
  distkv-client get user:123
  distkv-client delete user:123
  distkv-client batch key1 val1 key2 val2
  distkv-client scan --prefix user: --limit 10
  distkv-client -consistency=all put important-key \"critical data\"
  distkv-client -server=localhost:8081 -o json status

Exit status: 0 on success (also for a missing key), 1 on an error, 2 on a malformed flag.
";

pub(crate) fn parse(args: &[String]) -> Result<(), super::UsageError> {
    // Extra words after `help` are ignored, as in the original.
    let _ = args;
    Ok(())
}
