"""The records service: the city's typed, versioned records (health records, school records,
feedback tickets, food facilities, accommodation registrations), their history, who may read
them, their events and their bulk import and export."""
