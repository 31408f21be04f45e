# Herramientas para los chequeos visibles (celda dada: no la modifiques).
# comparar(...) imprime una línea por tensor: forma, diferencia máxima,
# error relativo y "ok" o "REVISAR".
import torch


def error_relativo(obtenido, esperado):
    """max|obtenido - esperado| / max|esperado|, calculado en float64."""
    a = torch.as_tensor(obtenido).detach().to("cpu", torch.float64)
    b = torch.as_tensor(esperado).detach().to("cpu", torch.float64)
    if b.numel() == 0:
        return 0.0
    dif = (a - b).abs().max().item()
    return dif / max(b.abs().max().item(), 1e-12)


def comparar(nombre, obtenido, esperado, tol=1e-5):
    """Compara tu tensor con el esperado; devuelve True si la forma y los valores coinciden."""
    if not isinstance(obtenido, torch.Tensor):
        print(f"{nombre:<12} REVISAR: se esperaba un tensor y llegó {type(obtenido).__name__}")
        return False
    esperado = torch.as_tensor(esperado)
    if tuple(obtenido.shape) != tuple(esperado.shape):
        print(f"{nombre:<12} REVISAR: forma {tuple(obtenido.shape)}, se esperaba {tuple(esperado.shape)}")
        return False
    if not torch.isfinite(obtenido.detach()).all() and torch.isfinite(esperado).all():
        print(f"{nombre:<12} REVISAR: contiene nan o inf")
        return False
    dif = (obtenido.detach().double().cpu() - esperado.detach().double().cpu()).abs()
    dif = dif.nan_to_num(0.0).max().item() if dif.numel() else 0.0
    rel = error_relativo(obtenido.nan_to_num(0.0), esperado.nan_to_num(0.0))
    ok = rel <= tol
    print(f"{nombre:<12} forma {str(tuple(obtenido.shape)):<10} dif. máx {dif:.1e}  "
          f"error rel. {rel:.1e}  {'ok' if ok else 'REVISAR'}")
    return ok


def chequear(resultados):
    """Falla con un mensaje en español si alguna comparación no pasó."""
    resultados = list(resultados)
    malos = sum(1 for r in resultados if not r)
    assert malos == 0, f"{malos} de {len(resultados)} comparaciones no coinciden: revisa las líneas marcadas REVISAR."
    print("Todo coincide.")
