-- Management groups (Microsoft.Management): a tree below the tenant root group. The root group
-- itself is not stored: its id is the tenant id, and a group without a parent hangs below it.
CREATE TABLE management_groups (
    name_key     TEXT PRIMARY KEY,            -- lowercase group id (name)
    name         TEXT NOT NULL,               -- casing of the first write
    display_name TEXT NOT NULL,
    parent_key   TEXT REFERENCES management_groups (name_key), -- NULL: below the root group
    version      INTEGER NOT NULL,
    updated_time TEXT NOT NULL,
    updated_by   TEXT NOT NULL
);
CREATE INDEX management_groups_by_parent ON management_groups (parent_key);

-- Where a subscription is placed; a subscription without a row lives below the root group.
CREATE TABLE management_group_subscriptions (
    subscription_id TEXT PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    group_key       TEXT NOT NULL REFERENCES management_groups (name_key)
);
CREATE INDEX management_group_subscriptions_by_group ON management_group_subscriptions (group_key);

-- Maintained state per resource group: like control_counts, over the resources of one group
-- only (a resource lies in at most one group). Moved in the same transaction as control_counts.
CREATE TABLE resource_group_counts (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    resource_group  TEXT NOT NULL,            -- lowercase resource group name
    control         TEXT NOT NULL,
    healthy         INTEGER NOT NULL,
    unhealthy       INTEGER NOT NULL,
    not_applicable  INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, control)
);

-- Existing data: counters from the resource tallies (a tally says the resource's state in a
-- control: any unhealthy, else any healthy, else not applicable), so an upgraded data directory
-- verifies clean. A resource key is '/subscriptions/' + 36-character GUID + '/resourcegroups/' + name.
INSERT INTO resource_group_counts (subscription_id, resource_group, control, healthy, unhealthy, not_applicable)
SELECT subscription_id, rg, control,
       SUM(CASE WHEN unhealthy = 0 AND healthy > 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN unhealthy > 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN unhealthy = 0 AND healthy = 0 AND not_applicable > 0 THEN 1 ELSE 0 END)
FROM (SELECT subscription_id, control, healthy, unhealthy, not_applicable,
             CASE WHEN instr(substr(resource_key, 68), '/') = 0 THEN substr(resource_key, 68)
                  ELSE substr(resource_key, 68, instr(substr(resource_key, 68), '/') - 1) END AS rg
      FROM resource_tallies WHERE substr(resource_key, 52, 16) = '/resourcegroups/')
GROUP BY subscription_id, rg, control;
