// Initiates the replica set rs0 with its first member, once; then waits until that member is primary.
try {
  rs.status();
} catch (e) {
  rs.initiate({ _id: 'rs0', members: [{ _id: 0, host: 'mongo:27017' }] });
}
while (!db.hello().isWritablePrimary) {
  sleep(500);
}
print('rs0 has a primary');
