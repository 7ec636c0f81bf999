def test_attacker_is_nobody(attacker):
    out = attacker("import os; print(os.getuid(), os.getgid())")
    assert out.stdout.split() == ["65534", "65534"]
