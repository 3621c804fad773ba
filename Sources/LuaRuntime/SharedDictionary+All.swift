import CLuaSpoa

extension SharedDictionary {
    /// Every dict declared so far, in declaration order (for metrics).
    public static var all: [SharedDictionary] {
        var dicts: [SharedDictionary] = []
        while let handle = luaspoa_dict_at(dicts.count) { dicts.append(SharedDictionary(handle: handle)) }
        return dicts
    }

    public var name: String { String(cString: luaspoa_dict_name(handle)) }
}
