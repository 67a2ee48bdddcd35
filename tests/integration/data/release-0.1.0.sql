-- The database of a Kopers 0.1.0 install with some use in it (users, a group,
-- a token, a web session, a project with a permission and two packages, a
-- finished build with its RPMs and buildroot), dumped data-only with pg_dump
-- --column-inserts. tests/integration/test_migrations.py loads it into the
-- 0.1.0 schema and migrates from there.
INSERT INTO public.users (id, name, is_admin, created_on, password_hash) VALUES (1, 'alice', true, '2026-12-02 19:55:25.553651+00', '$argon2id$v=19$m=65536,t=3,p=4$wHPWlRsIRknvTurO0wjRNw$7sNSLnu5Qg1YL9nrBELq0ttDNFyVxXgYen4UyKPa178');
INSERT INTO public.users (id, name, is_admin, created_on, password_hash) VALUES (2, 'bob', false, '2026-12-02 19:55:33.239215+00', NULL);
INSERT INTO public.projects (id, owner, name, description, instructions, homepage, contact, additional_repos, enable_net, created_by, created_on, keep_builds, quota_mib, delete_after, build_timeout, persistent, unlisted_on_hp, auto_prune, module_hotfixes, repo_priority, runtime_dependencies, follow_fedora_branching, packit_forge_projects_allowed, webhook_secret, rebuild_dependents) VALUES (1, 'alice', 'hello', 'A project from release 0.1.0', 'dnf install hello', NULL, NULL, '{}', false, 1, '2026-12-02 19:57:02.872553+00', NULL, NULL, NULL, NULL, false, false, true, false, NULL, '{}', true, '{}', '25d6803d-b78e-443b-9765-c2a7f30cd317', false);
INSERT INTO public.packages (id, project_id, name, source_type, source, webhook_rebuild, max_builds, timeout, chroot_denylist, created_on) VALUES (1, 1, 'kopers-rel-hello', 'upload', '{"filename": "kopers-rel-hello-1.0-1.src.rpm"}', false, NULL, NULL, '{}', '2026-12-02 19:57:04.728014+00');
INSERT INTO public.packages (id, project_id, name, source_type, source, webhook_rebuild, max_builds, timeout, chroot_denylist, created_on) VALUES (2, 1, 'kopers-scm', 'scm', '{"spec": "", "type": "git", "scm_type": "git", "clone_url": "https://example.org/x.git", "committish": "", "subdirectory": "", "source_build_method": "rpkg"}', false, NULL, NULL, '{}', '2026-12-02 19:58:05.626973+00');
INSERT INTO public.builds (id, project_id, submitter_id, source_type, source, package_name, package_version, srpm_name, source_state, canceled, timeout, submitted_on, started_on, ended_on, batch_id, priority, is_background, package_id) VALUES (1, 1, 1, 'upload', '{"filename": "kopers-rel-hello-1.0-1.src.rpm"}', 'kopers-rel-hello', '1.0-1', 'kopers-rel-hello-1.0-1.src.rpm', 'succeeded', false, 18000, '2026-12-02 19:57:04.728014+00', '2026-12-02 19:57:04.800857+00', '2026-12-02 19:57:36.542981+00', NULL, 0, false, 1);
INSERT INTO public.build_tasks (build_id, chroot, state, started_on, ended_on, result_dir, reason, attempts, steps) VALUES (1, 'debian-12-x86_64', 'succeeded', '2026-12-02 19:57:04.800857+00', '2026-12-02 19:57:36.542981+00', '/var/tmp/rel-data/results/alice/hello/debian-12-x86_64/00000001-kopers-rel-hello', NULL, 1, '[{"name": "vm claim", "offset": 0.018, "source": "kopers", "seconds": 16.95}, {"name": "repo forwards", "offset": 16.981, "source": "kopers", "seconds": 0.016}, {"name": "upload", "offset": 16.997, "source": "kopers", "seconds": 0.533}, {"name": "builder", "offset": 17.531, "source": "kopers", "seconds": 13.735}, {"name": "unpack", "offset": 19.509, "source": "builder", "seconds": 1.724}, {"name": "rpmbuild", "offset": 22.111, "source": "builder", "seconds": 9.001}, {"name": "result download", "offset": 31.267, "source": "kopers", "seconds": 0.252}, {"name": "result check", "offset": 31.52, "source": "kopers", "seconds": 0.034}, {"name": "staging", "offset": 31.556, "source": "kopers", "seconds": 0.002}, {"name": "signing", "offset": 31.558, "source": "kopers", "seconds": 0.077}, {"name": "publish", "offset": 31.642, "source": "kopers", "seconds": 0.056}, {"name": "vm release", "offset": 31.523, "source": "kopers", "seconds": 2.051}]');
INSERT INTO public.buildroot_packages (build_id, chroot, nevra) VALUES (1, 'debian-12-x86_64', 'kopers-system-provides-12-1.x86_64');
INSERT INTO public.built_packages (build_id, chroot, name, epoch, version, release, arch) VALUES (1, 'debian-12-x86_64', 'kopers-rel-hello', 0, '1.0', '1.deb12.kopers', 'noarch');
INSERT INTO public.built_packages (build_id, chroot, name, epoch, version, release, arch) VALUES (1, 'debian-12-x86_64', 'kopers-rel-hello', 0, '1.0', '1.deb12.kopers', 'src');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (1, '2026-12-02 19:55:25.553651+00', NULL, 'cli', 'user.create', 'alice', '{"admin": true, "os_user": "root"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (2, '2026-12-02 19:55:32.102252+00', 1, 'cli', 'token.create', 'alice', '{"login": "5a9b532364ba5b1c39098c8a", "os_user": "root"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (3, '2026-12-02 19:55:32.815717+00', NULL, 'cli', 'user.password', 'alice', '{"os_user": "root"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (4, '2026-12-02 19:55:33.239215+00', NULL, 'cli', 'user.create', 'bob', '{"admin": false, "os_user": "root"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (5, '2026-12-02 19:55:33.74143+00', 2, 'cli', 'token.create', 'bob', '{"login": "18f5911700d3573dcd103265", "os_user": "root"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (6, '2026-12-02 19:57:02.872553+00', 1, '127.0.0.1', 'project.create', 'alice/hello', '{"chroots": ["debian-12-x86_64"]}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (7, '2026-12-02 19:57:04.728014+00', 1, '127.0.0.1', 'build.submit', 'alice/hello', '{"build": 1, "chroots": ["debian-12-x86_64"]}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (8, '2026-12-02 19:58:05.626973+00', 1, '127.0.0.1', 'package.add', 'alice/hello', '{"package": "kopers-scm", "source_type": "scm"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (9, '2026-12-02 19:58:06.302531+00', 1, '127.0.0.1', 'permission.set', 'alice/hello', '{"changes": {"bob": {"builder": ["nothing", "approved"]}}}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (10, '2026-12-02 19:58:13.004128+00', NULL, 'cli', 'group.create', '@devs', '{"os_user": "root"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (11, '2026-12-02 19:58:14.591313+00', NULL, 'cli', 'group.member.add', '@devs', '{"user": "bob", "admin": false, "os_user": "root"}');
INSERT INTO public.events (id, at, user_id, address, action, object, details) VALUES (12, '2026-12-02 19:58:18.448791+00', 1, '127.0.0.1', 'user.signin', 'alice', '{}');
INSERT INTO public.groups (id, name, created_on) VALUES (1, 'devs', '2026-12-02 19:58:13.004128+00');
INSERT INTO public.group_members (group_id, user_id, is_admin, added_on) VALUES (1, 2, false, '2026-12-02 19:58:14.591313+00');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (1, '2026-12-02 19:57:04.751016+00', 1, 'task.state', 1, 'debian-12-x86_64', 'pending', NULL, '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (2, '2026-12-02 19:57:04.752849+00', 1, 'build.state', 1, NULL, 'pending', NULL, '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (3, '2026-12-02 19:57:04.807173+00', 1, 'task.state', 1, 'debian-12-x86_64', 'starting', 'pending', '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (4, '2026-12-02 19:57:04.809171+00', 1, 'build.state', 1, NULL, 'starting', 'pending', '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (5, '2026-12-02 19:57:21.771625+00', 1, 'task.state', 1, 'debian-12-x86_64', 'running', 'starting', '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (6, '2026-12-02 19:57:21.774063+00', 1, 'build.state', 1, NULL, 'running', 'starting', '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (7, '2026-12-02 19:57:36.517902+00', 1, 'build.published', 1, 'debian-12-x86_64', 'published', NULL, '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (8, '2026-12-02 19:57:36.550777+00', 1, 'task.state', 1, 'debian-12-x86_64', 'succeeded', 'running', '{}');
INSERT INTO public.notifications (id, at, project_id, kind, build_id, chroot, state, previous, payload) VALUES (9, '2026-12-02 19:57:36.551797+00', 1, 'build.state', 1, NULL, 'succeeded', 'running', '{}');
INSERT INTO public.login_attempts (id, at, username, address, succeeded) VALUES (1, '2026-12-02 19:58:17.914266+00', 'alice', '127.0.0.1', true);
INSERT INTO public.project_chroots (project_id, chroot, additional_repos, enabled) VALUES (1, 'debian-12-x86_64', '{}', true);
INSERT INTO public.project_permissions (project_id, user_id, builder, admin) VALUES (1, 2, 'approved', 'nothing');
INSERT INTO public.tokens (id, user_id, login, secret_hash, created_on, expires_on, last_used, revoked, revoked_on) VALUES (2, 2, '18f5911700d3573dcd103265', 'ed1fe161bb12842a79126ef080c83a8cdbb20be4512ec40af1091d31596c5ece', '2026-12-02 19:55:33.74143+00', '2027-05-31 19:55:33.74502+00', NULL, false, NULL);
INSERT INTO public.tokens (id, user_id, login, secret_hash, created_on, expires_on, last_used, revoked, revoked_on) VALUES (1, 1, '5a9b532364ba5b1c39098c8a', '7b311eae2b2795cd5a25e35a451dfd5a6eff8908a11588fb608d192327b34ea2', '2026-12-02 19:55:32.102252+00', '2027-05-31 19:55:32.104002+00', '2026-12-02 19:58:06.297228+00', false, NULL);
INSERT INTO public.web_sessions (id, user_id, csrf_secret, created_on, last_seen, expires_on, address) VALUES ('ad3957963256d05d48042baab03d136012df6f6723125d44947b0157fe86be2d', 1, '\xbfe0a900fdbbeef5bb1ab988786b6566ba75a7e248634489116a28c36556ea0e', '2026-12-02 19:58:18.448411+00', '2026-12-02 19:58:18.448411+00', '2026-12-09 19:58:18.448411+00', '127.0.0.1');
SELECT pg_catalog.setval('public.batches_id_seq', 1, false);
SELECT pg_catalog.setval('public.builds_id_seq', 1, true);
SELECT pg_catalog.setval('public.events_id_seq', 12, true);
SELECT pg_catalog.setval('public.groups_id_seq', 1, true);
SELECT pg_catalog.setval('public.hook_deliveries_id_seq', 1, false);
SELECT pg_catalog.setval('public.hooks_id_seq', 1, false);
SELECT pg_catalog.setval('public.login_attempts_id_seq', 1, true);
SELECT pg_catalog.setval('public.notifications_id_seq', 9, true);
SELECT pg_catalog.setval('public.packages_id_seq', 2, true);
SELECT pg_catalog.setval('public.projects_id_seq', 1, true);
SELECT pg_catalog.setval('public.tokens_id_seq', 2, true);
SELECT pg_catalog.setval('public.users_id_seq', 2, true);
SELECT pg_catalog.setval('public.webhook_receipts_id_seq', 1, false);
