-- ops.defer_indexes waits at most a second for its lock (SET LOCAL lock_timeout in its
-- body), and that setting outlived the call to the end of the caller's transaction. The
-- pipeline commits the drop at once, but person linking defers the indexes of its own
-- empty tables inside its one long transaction, whose later statements must wait for
-- their locks as long as any other. A function's own SET clause confines every change of
-- the setting inside it to the call.
ALTER FUNCTION ops.defer_indexes(regclass, text, bigint, integer) SET lock_timeout = '1s';
