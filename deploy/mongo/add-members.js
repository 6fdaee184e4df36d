// Adds mongo2 and mongo3 to rs0 (`docker compose --profile cluster up`); members it already has are left alone.
const hosts = rs.conf().members.map((member) => member.host);
for (const host of ['mongo2:27017', 'mongo3:27017']) {
  if (!hosts.includes(host)) {
    rs.add({ host });
  }
}
printjson(rs.conf().members.map((member) => member.host));
