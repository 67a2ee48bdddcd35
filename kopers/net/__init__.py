"""Where Kopers connects on a user's behalf, and the egress proxy of network-enabled builds.

`policy` decides which addresses may be used (pure), `local` lists this host's
own addresses, `connect` resolves a name once and connects only to checked
addresses, and `proxy` is the HTTP proxy a network-enabled builder VM reaches
through its SSH connection.
"""
